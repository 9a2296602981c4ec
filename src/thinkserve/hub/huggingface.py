"""Hugging Face, through ``huggingface_hub``: its endpoint (``HF_ENDPOINT``), token (``HF_TOKEN``),
metadata calls and cache layout (imports hub).

``huggingface_hub`` answers the questions: the repo listing (``GET /api/models/{repo}/revision/{rev}``)
and one file's metadata (``HEAD /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` /
``X-Linked-Etag`` = the sha256 of an LFS file, ``X-Linked-Size``). The bytes go through thinkserve's
own transfer (transfer.py), which resumes across runs and checks the hash. The file lands in
huggingface_hub's cache layout, so its own tools find it and thinkserve finds theirs::

    $HF_HUB_CACHE/models--ORG--REPO/blobs/<sha256>              the bytes
    $HF_HUB_CACHE/models--ORG--REPO/blobs/<sha256>.incomplete   while they arrive
    $HF_HUB_CACHE/models--ORG--REPO/snapshots/<commit>/PATH     -> ../../blobs/<sha256>
    $HF_HUB_CACHE/models--ORG--REPO/refs/main                   <commit>
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from huggingface_hub import (
    HfApi,
    constants,
    get_hf_file_metadata,
    hf_hub_url,
    scan_cache_dir,
    try_to_load_from_cache,
)
from huggingface_hub.errors import (
    CacheNotFound,
    CorruptedCacheException,
    HfHubHTTPError,
    OfflineModeIsEnabled,
)

# Documented as huggingface_hub.utils.build_hf_headers; the package does not re-export it for mypy.
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

from thinkserve.hub.reference import HubName, Reference, first_part
from thinkserve.hub.remote import HubError, HubUnreachable, ListedFile, NotOnHub, RemoteFile

DEFAULT_ENDPOINT = "https://huggingface.co"
_HEX = re.compile(r"^[0-9a-f]+$")


class HuggingFace:
    name: HubName = "hf"

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        cache_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        # An empty HF_ENDPOINT means unset, as for huggingface_hub's other settings.
        self.endpoint = (endpoint or env.get("HF_ENDPOINT") or constants.ENDPOINT or DEFAULT_ENDPOINT).rstrip(
            "/"
        )
        self.token = token or env.get("HF_TOKEN") or None
        self.cache_dir = cache_dir or _cache_dir(env)

    def mirror_hint(self) -> str:
        return (
            f"Hugging Face did not answer at {self.endpoint}. Set HF_ENDPOINT to a mirror's URL, or pull "
            "from ModelScope with --hub modelscope (or THINKSERVE_HUB=modelscope; MODELSCOPE_ENDPOINT for "
            "its mirror)."
        )

    def _api(self) -> HfApi:
        return HfApi(endpoint=self.endpoint, token=self.token)

    def listing(self, repo: str, revision: str) -> list[ListedFile]:
        try:
            info = self._api().model_info(repo, revision=revision, files_metadata=True)
        except Exception as exc:
            raise self._error(exc, f"{repo}@{revision}") from exc
        return [ListedFile(s.rfilename, s.size) for s in info.siblings or []]

    def describe(self, ref: Reference) -> RemoteFile:
        url = hf_hub_url(ref.repo, ref.path, revision=ref.revision, endpoint=self.endpoint)
        try:
            meta = get_hf_file_metadata(url, token=self.token, endpoint=self.endpoint)
        except Exception as exc:
            raise self._error(exc, str(ref)) from exc
        if meta.commit_hash is None or meta.etag is None or meta.size is None:
            raise HubError(
                f"{url} did not say which commit, hash and size it serves "
                "(X-Repo-Commit, ETag, Content-Length): is HF_ENDPOINT a Hugging Face hub?"
            )
        etag = meta.etag.lower()
        if not _HEX.match(etag) or len(etag) not in (40, 64):
            raise HubError(
                f"{url}: the ETag {meta.etag!r} is not a sha256 or git sha1; cannot check the file"
            )
        return RemoteFile(
            path=ref.path,
            size=meta.size,
            digest=etag,
            algorithm="sha256" if len(etag) == 64 else "git-sha1",
            # The hub's own URL: its redirect to a CDN is followed by the download, which drops the
            # Authorization header on the way (httpx does, as huggingface_hub does).
            url=url,
            commit=meta.commit_hash,
            headers=build_hf_headers(token=self.token),
        )

    def _repo_dir(self, repo: str) -> Path:
        return self.cache_dir / ("models--" + repo.replace("/", "--"))

    def partial_path(self, ref: Reference, remote: RemoteFile) -> Path:
        return self._repo_dir(ref.repo) / "blobs" / f"{remote.digest}.incomplete"

    def install(self, ref: Reference, remote: RemoteFile, finished: Path) -> Path:
        repo_dir = self._repo_dir(ref.repo)
        blob = repo_dir / "blobs" / remote.digest
        os.replace(finished, blob)
        link = repo_dir / "snapshots" / remote.commit / ref.path
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(blob, link.parent)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
        if ref.revision != remote.commit:
            refs = repo_dir / "refs" / ref.revision
            refs.parent.mkdir(parents=True, exist_ok=True)
            tmp = refs.with_name(refs.name + ".tmp")
            tmp.write_text(remote.commit)
            os.replace(tmp, refs)
        return link

    def cached(self, ref: Reference) -> Path | None:
        found = try_to_load_from_cache(ref.repo, ref.path, cache_dir=self.cache_dir, revision=ref.revision)
        return Path(found) if isinstance(found, str) and Path(found).is_file() else None

    def remove(self, ref: Reference) -> int:
        path = self.cached(ref)
        if path is None:
            return 0
        blob = path.resolve()
        freed = blob.stat().st_size if blob.exists() else 0
        path.unlink()
        # Another snapshot may still link the same blob: keep it then.
        snapshots = self._repo_dir(ref.repo) / "snapshots"
        if blob.exists() and not any(
            p.is_symlink() and p.resolve() == blob for p in snapshots.rglob("*") if p != path
        ):
            blob.unlink()
        else:
            freed = 0
        return freed

    def inventory(self) -> list[tuple[Reference, Path]]:
        try:
            info = scan_cache_dir(self.cache_dir)
        except (CacheNotFound, CorruptedCacheException):
            return []
        found = []
        for repo in info.repos:
            if repo.repo_type != "model":
                continue
            for revision in repo.revisions:
                # Named by the ref that points at it ("main"), else by its commit.
                name = min(revision.refs) if revision.refs else revision.commit_hash
                for file in revision.files:
                    path = file.file_path.relative_to(revision.snapshot_path).as_posix()
                    if path.endswith(".gguf") and first_part(path) == path:
                        found.append((Reference("hf", repo.repo_id, path, name), file.file_path))
        return sorted(found, key=lambda item: str(item[0]))

    def _error(self, exc: Exception, what: str) -> HubError:
        if isinstance(exc, OfflineModeIsEnabled):
            return HubUnreachable(f"HF_HUB_OFFLINE is set, so {what} cannot be fetched. Unset it to pull.")
        if isinstance(exc, HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403, 404):
                return NotOnHub(
                    f"{what}: not found on {self.endpoint} (HTTP {status}). Check the name; a gated or "
                    "private repo needs HF_TOKEN."
                )
            return HubError(f"{what}: {self.endpoint} answered HTTP {status}: {exc}")
        return HubUnreachable(f"{self.mirror_hint()} ({type(exc).__name__}: {exc})")


def _cache_dir(env: Mapping[str, str]) -> Path:
    """huggingface_hub's own rule: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if cache := env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        return Path(cache).expanduser()
    if home := env.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "huggingface" / "hub"
