"""Loopback stand-ins for Hugging Face and ModelScope, speaking the hubs' file APIs.

Hugging Face (as huggingface_hub calls it):

    GET  /api/models/{org}/{repo}/revision/{rev}  -> {"id", "sha", "siblings": [{"rfilename", "size",
                                                      "blobId", "lfs": {"sha256", "size", "pointerSize"}}]}
    HEAD /{org}/{repo}/resolve/{rev}/{path}       -> 302 to the "CDN" (another host name: localhost),
                                                      with X-Repo-Commit, X-Linked-Etag (the sha256),
                                                      X-Linked-Size, ETag
    GET  /{org}/{repo}/resolve/{rev}/{path}       -> the same 302; the CDN serves the bytes (Range)

ModelScope:

    GET /api/v1/models/{org}/{repo}/repo/files?Revision=&Recursive=  -> {"Code": 200, "Data": {"Files": …}}
    GET /api/v1/models/{org}/{repo}/repo?Revision=&FilePath=         -> the bytes (Range)

Faults for the tests: ``corrupt`` (paths served with one byte flipped), ``drop_after`` (path -> bytes
sent before the connection is cut, once), and ``requests`` records what was asked.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

REPO = "thinkserve-test/tiny-qwen3-GGUF"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 256 * 1024


@dataclass
class Hub:
    kind: str
    """``hf`` or ``modelscope``."""
    files: dict[str, bytes]
    repo: str = REPO
    corrupt: set[str] = field(default_factory=set)
    drop_after: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, file path or API name, Range header)."""
    authorization: list[tuple[str, str | None]] = field(default_factory=list)
    """(file path or API name, Authorization header) of every request."""
    port: int = 0

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    def is_lfs(self, path: str) -> bool:
        """Weights are LFS files; small text files (config.json, README.md) live in git."""
        return not path.endswith((".json", ".md", ".txt"))

    def downloads(self) -> list[tuple[str, str | None]]:
        """(path, Range) of every body request."""
        return [(p, r) for m, p, r in self.requests if m == "GET" and not p.startswith(("api:", "resolve:"))]

    def app(self) -> Starlette:
        return hf_app(self) if self.kind == "hf" else modelscope_app(self)


def _body(hub: Hub, path: str, request: Request) -> Response:
    data = hub.files[path]
    if path in hub.corrupt:
        data = bytes([data[0] ^ 0xFF]) + data[1:]
    start = 0
    status = 200
    headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
    if (rng := request.headers.get("range")) and rng.startswith("bytes="):
        start = int(rng.removeprefix("bytes=").split("-")[0])
        if start >= len(data):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    headers["Content-Length"] = str(len(data) - start)
    cut = hub.drop_after.pop(path, None)

    async def stream() -> AsyncIterator[bytes]:
        sent = 0
        for at in range(start, len(data), CHUNK):
            piece = data[at : at + CHUNK]
            if cut is not None and sent + len(piece) > cut:
                yield piece[: cut - sent]
                # The connection drops mid-body: uvicorn closes it short of Content-Length.
                raise ConnectionResetError("stand-in: connection cut")
            sent += len(piece)
            yield piece

    return StreamingResponse(stream(), status_code=status, headers=headers)


def hf_app(hub: Hub) -> Starlette:
    async def model_info(request: Request) -> Response:
        repo = f"{request.path_params['org']}/{request.path_params['repo']}"
        hub.requests.append(("GET", "api:model_info", None))
        hub.authorization.append(("api:model_info", request.headers.get("authorization")))
        if repo != hub.repo:
            return JSONResponse(
                {"error": "Repository not found"}, 404, headers={"X-Error-Code": "RepoNotFound"}
            )
        siblings = [
            {
                "rfilename": p,
                "size": len(b),
                "blobId": hashlib.sha1(b).hexdigest(),
                **(
                    {"lfs": {"sha256": hub.sha256(p), "size": len(b), "pointerSize": 134}}
                    if hub.is_lfs(p)
                    else {}
                ),
            }
            for p, b in hub.files.items()
        ]
        return JSONResponse(
            {"id": repo, "modelId": repo, "sha": COMMIT, "private": False, "siblings": siblings}
        )

    async def resolve(request: Request) -> Response:
        repo = f"{request.path_params['org']}/{request.path_params['repo']}"
        path = request.path_params["path"]
        hub.requests.append((request.method, f"resolve:{path}", request.headers.get("range")))
        hub.authorization.append((f"resolve:{path}", request.headers.get("authorization")))
        if repo != hub.repo or path not in hub.files:
            return Response(status_code=404, headers={"X-Error-Code": "EntryNotFound"})
        sha = hub.sha256(path)
        if not hub.is_lfs(path):
            # A file kept in git itself: served by the hub, its ETag the git blob sha1.
            blob = hub.files[path]
            git_sha = hashlib.sha1(f"blob {len(blob)}\0".encode() + blob).hexdigest()
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{git_sha}"', "Content-Length": str(len(blob))}
            if request.method == "HEAD":
                return Response(status_code=200, headers=headers)
            hub.requests.append(("GET", path, request.headers.get("range")))
            return _body(hub, path, request)
        # LFS files: the hub answers with a redirect to its CDN, and the metadata rides on the redirect.
        return Response(
            status_code=302,
            headers={
                "Location": f"http://localhost:{hub.port}/cdn/{sha}?path={path}",
                "X-Repo-Commit": COMMIT,
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(len(hub.files[path])),
                "ETag": f'"{hashlib.sha1(hub.files[path]).hexdigest()}"',
            },
        )

    async def cdn(request: Request) -> Response:
        path = request.query_params["path"]
        hub.requests.append((request.method, path, request.headers.get("range")))
        hub.authorization.append((path, request.headers.get("authorization")))
        return _body(hub, path, request)

    return Starlette(
        routes=[
            Route("/api/models/{org}/{repo}/revision/{rev}", model_info, methods=["GET"]),
            Route("/{org}/{repo}/resolve/{rev}/{path:path}", resolve, methods=["GET", "HEAD"]),
            Route("/cdn/{sha}", cdn, methods=["GET"]),
        ]
    )


def modelscope_app(hub: Hub) -> Starlette:
    async def files(request: Request) -> Response:
        repo = f"{request.path_params['org']}/{request.path_params['repo']}"
        hub.requests.append(("GET", "api:files", None))
        hub.authorization.append(("api:files", request.headers.get("authorization")))
        if repo != hub.repo:
            return JSONResponse({"Code": 10010205001, "Message": "model not found", "Success": False}, 404)
        listing = [
            {
                "Name": p.rsplit("/", 1)[-1],
                "Path": p,
                "Size": len(b),
                "Sha256": hub.sha256(p),
                "Revision": COMMIT,
                "Type": "blob",
            }
            for p, b in hub.files.items()
        ]
        return JSONResponse({"Code": 200, "Data": {"Files": listing}, "Message": "success", "Success": True})

    async def download(request: Request) -> Response:
        repo = f"{request.path_params['org']}/{request.path_params['repo']}"
        path = request.query_params.get("FilePath", "")
        hub.requests.append(("GET", path, request.headers.get("range")))
        hub.authorization.append((path, request.headers.get("authorization")))
        if repo != hub.repo or path not in hub.files:
            return JSONResponse({"Code": 10010205001, "Message": "file not found", "Success": False}, 404)
        return _body(hub, path, request)

    return Starlette(
        routes=[
            Route("/api/v1/models/{org}/{repo}/repo/files", files, methods=["GET"]),
            Route("/api/v1/models/{org}/{repo}/repo", download, methods=["GET"]),
        ]
    )
