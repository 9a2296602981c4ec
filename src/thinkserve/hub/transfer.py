"""One file's bytes: resumable download into a partial file, then the hash check (imports hub).

The partial file lives where the server never reads (the hub's ``.incomplete`` name); only a file
whose size and hash match the hub's is moved into place, by the hub (``Hub.install``). A run that
stops (Ctrl-C, a dropped connection, a crash) leaves the partial file, and the next run asks for the
rest with ``Range: bytes=N-``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

import httpx

from thinkserve.hub.remote import HubError, HubUnreachable, RemoteFile

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# Connection drops within one run: each try resumes where the last one stopped.
TRIES = 4


class Reporter(Protocol):
    """Progress of one file (a rich bar in the CLI)."""

    def begin(self, label: str, total: int, done: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def restart(self) -> None:
        """The server ignored the range: the bytes count from zero again."""
        ...

    def end(self) -> None: ...


class HashMismatch(HubError):
    pass


def fetch(remote: RemoteFile, partial: Path, reporter: Reporter, client: httpx.Client) -> None:
    """Download ``remote`` into ``partial`` (resuming what is there) and check its size and hash.

    On a hash mismatch the partial file is deleted and HashMismatch raised. A transfer that keeps
    failing raises HubError and keeps the partial file for the next run.
    """
    partial.parent.mkdir(parents=True, exist_ok=True)
    done = partial.stat().st_size if partial.exists() else 0
    if done > remote.size:
        partial.unlink()
        done = 0
    reporter.begin(remote.path, remote.size, done)
    try:
        for attempt in range(TRIES):
            try:
                done = _get(remote, partial, done, reporter, client)
                break
            except (httpx.TransportError, _ShortBody) as exc:
                done = partial.stat().st_size if partial.exists() else 0
                if attempt == TRIES - 1:
                    raise HubUnreachable(
                        f"the download of {remote.path} kept failing ({exc}); {done} of {remote.size} bytes "
                        "are kept: run the same pull again to resume"
                    ) from exc
                log.warning("download of %s interrupted at %d bytes (%s); resuming", remote.path, done, exc)
    finally:
        reporter.end()
    verify(remote, partial)


class _ShortBody(Exception):
    pass


def _get(remote: RemoteFile, partial: Path, done: int, reporter: Reporter, client: httpx.Client) -> int:
    if done >= remote.size:
        return done
    headers = dict(remote.headers)
    if done:
        headers["Range"] = f"bytes={done}-"
    with client.stream("GET", remote.url, headers=headers) as response:
        if response.status_code >= 400:
            raise HubError(f"{remote.url} answered HTTP {response.status_code} to the download")
        if done and response.status_code != 206:
            # The server sent the whole file: start over rather than append it to what is there.
            done = 0
            reporter.restart()
        with partial.open("ab" if done else "wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                done += len(chunk)
                reporter.advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    if done < remote.size:
        raise _ShortBody(f"the body ended after {done} of {remote.size} bytes")
    return done


def verify(remote: RemoteFile, path: Path) -> None:
    """Size and hash against the hub's; a mismatch deletes ``path`` and raises HashMismatch."""
    size = path.stat().st_size
    actual = digest(path, remote.algorithm, size)
    if size != remote.size or actual != remote.digest:
        path.unlink()
        raise HashMismatch(
            f"{remote.path}: the downloaded file does not match the hub's (expected {remote.size} bytes "
            f"with {remote.algorithm} {remote.digest}, got {size} bytes with {actual}); it was deleted. "
            "Run the pull again; if it fails again, the hub or a proxy on the way is serving bad bytes."
        )


def digest(path: Path, algorithm: str, size: int) -> str:
    """``sha256`` of the bytes, or git's blob sha1 (``sha1(b"blob SIZE\\0" + bytes)``)."""
    h = hashlib.sha256() if algorithm == "sha256" else hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()
