"""ModelScope, over its HTTP file API with httpx, in the cache layout of its own library (imports hub).

Why not the ``modelscope`` library: it is 69 MB of training and pipeline code around a hub client, and
its client (``modelscope-hub``) downloads through its own resume, lock and region-probing logic,
which would not share thinkserve's transfer (progress, resume across runs, hash check, nothing
half-written where the server reads). The file API it calls is two requests::

    GET {endpoint}/api/v1/models/{ORG}/{REPO}/repo/files?Revision=master&Recursive=True
        -> {"Code": 200, "Data": {"Files": [{"Path": "x.gguf", "Size": 123, "Sha256": "…",
            "Revision": "<commit>", "Type": "blob"}]}, "Success": true}
    GET {endpoint}/api/v1/models/{ORG}/{REPO}/repo?Revision=master&FilePath=x.gguf   (Range honoured)

Settings, as the library reads them: ``MODELSCOPE_ENDPOINT`` (a mirror; or the older
``MODELSCOPE_DOMAIN``), ``MODELSCOPE_API_TOKEN``, ``MODELSCOPE_CACHE``. Cache layout (modelscope-hub's;
the library's older ``hub/models/ORG/REPO/PATH`` layout is found too)::

    $MODELSCOPE_CACHE/models/ORG--REPO/snapshots/<revision>/PATH
    $MODELSCOPE_CACHE/models/ORG--REPO/snapshots/<revision>/PATH.incomplete   while it arrives
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from thinkserve.hub.reference import HubName, Reference, first_part
from thinkserve.hub.remote import HubError, HubUnreachable, ListedFile, NotOnHub, RemoteFile

DEFAULT_ENDPOINT = "https://www.modelscope.cn"
# Metadata calls fail fast: an unreachable hub must not hang a pull.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class ModelScope:
    name: HubName = "modelscope"

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        cache_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        domain = env.get("MODELSCOPE_DOMAIN", "").strip()
        self.endpoint = (
            endpoint
            or env.get("MODELSCOPE_ENDPOINT")
            or (f"https://{domain}" if domain else DEFAULT_ENDPOINT)
        ).rstrip("/")
        self.token = token or env.get("MODELSCOPE_API_TOKEN") or None
        self.cache_dir = (
            cache_dir
            or Path(
                env.get("MODELSCOPE_CACHE")
                or Path(env.get("HOME", str(Path.home()))) / ".cache" / "modelscope"
            ).expanduser()
        )

    def mirror_hint(self) -> str:
        return (
            f"ModelScope did not answer at {self.endpoint}. Set MODELSCOPE_ENDPOINT to a mirror's URL, or "
            "pull from Hugging Face with --hub hf (HF_ENDPOINT for its mirror)."
        )

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "thinkserve"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _files(self, repo: str, revision: str) -> list[dict[str, Any]]:
        url = f"{self.endpoint}/api/v1/models/{repo}/repo/files"
        try:
            response = httpx.get(
                url,
                params={"Revision": revision, "Recursive": "True"},
                headers=self._headers(),
                timeout=TIMEOUT,
            )
        except httpx.TransportError as exc:
            raise HubUnreachable(f"{self.mirror_hint()} ({type(exc).__name__}: {exc})") from exc
        if response.status_code in (401, 403, 404):
            raise NotOnHub(
                f"{repo}@{revision}: not found on {self.endpoint} (HTTP {response.status_code}). Check the "
                "name; a private repo needs MODELSCOPE_API_TOKEN."
            )
        if response.status_code >= 400:
            raise HubError(f"{url} answered HTTP {response.status_code}")
        try:
            body = response.json()
            data = body.get("Data", body)
            files = data.get("Files") if isinstance(data, dict) else data
            if not isinstance(files, list):
                raise TypeError("no file list")
        except (ValueError, TypeError, AttributeError) as exc:
            raise HubError(f"{url} did not answer with a ModelScope file list: {exc}") from exc
        return [f for f in files if isinstance(f, dict) and f.get("Type", "blob") == "blob"]

    def listing(self, repo: str, revision: str) -> list[ListedFile]:
        return [ListedFile(str(f.get("Path")), _int(f.get("Size"))) for f in self._files(repo, revision)]

    def describe(self, ref: Reference) -> RemoteFile:
        for entry in self._files(ref.repo, ref.revision):
            if entry.get("Path") == ref.path:
                break
        else:
            raise NotOnHub(f"{ref}: the repo has no file {ref.path!r} at {ref.revision}")
        size, sha = _int(entry.get("Size")), str(entry.get("Sha256") or "").lower()
        if size is None or len(sha) != 64:
            raise HubError(
                f"{ref}: ModelScope's listing gives no size or sha256 for it; cannot check the file"
            )
        url = httpx.URL(
            f"{self.endpoint}/api/v1/models/{ref.repo}/repo",
            params={"Revision": ref.revision, "FilePath": ref.path},
        )
        return RemoteFile(
            path=ref.path,
            size=size,
            digest=sha,
            algorithm="sha256",
            url=str(url),
            commit=str(entry.get("Revision") or ref.revision),
            headers=self._headers(),
        )

    def _target(self, ref: Reference) -> Path:
        return self.cache_dir / "models" / ref.repo.replace("/", "--") / "snapshots" / ref.revision / ref.path

    def _legacy(self, ref: Reference) -> Path:
        return self.cache_dir / "hub" / "models" / ref.repo / ref.path

    def partial_path(self, ref: Reference, remote: RemoteFile) -> Path:
        target = self._target(ref)
        return target.with_name(target.name + ".incomplete")

    def install(self, ref: Reference, remote: RemoteFile, finished: Path) -> Path:
        target = self._target(ref)
        os.replace(finished, target)
        return target

    def cached(self, ref: Reference) -> Path | None:
        for path in (self._target(ref), self._legacy(ref)):
            if path.is_file():
                return path
        return None

    def remove(self, ref: Reference) -> int:
        path = self.cached(ref)
        if path is None:
            return 0
        freed = path.stat().st_size
        path.unlink()
        return freed

    def inventory(self) -> list[tuple[Reference, Path]]:
        found = []
        for snapshot in sorted(self.cache_dir.glob("models/*--*/snapshots/*")):
            repo = snapshot.parent.parent.name.replace("--", "/", 1)
            found += [
                (Reference("modelscope", repo, p, snapshot.name), snapshot / p) for p in _ggufs(snapshot)
            ]
        for repo_dir in sorted(self.cache_dir.glob("hub/models/*/*")):
            repo = f"{repo_dir.parent.name}/{repo_dir.name}"
            found += [(Reference("modelscope", repo, p, "master"), repo_dir / p) for p in _ggufs(repo_dir)]
        return found


def _ggufs(root: Path) -> list[str]:
    paths = (p.relative_to(root).as_posix() for p in sorted(root.rglob("*.gguf")) if p.is_file())
    return [p for p in paths if first_part(p) == p]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
