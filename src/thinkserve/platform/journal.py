"""The append-only usage journal: a record is safe once written here (imports
platform.metering).

Each server process appends to its own segment files, ``<data_dir>/journal/usage-<pid>-<n>.jsonl``,
holding an exclusive ``flock`` on them while it lives. One JSON object a line::

    {"id":"9f3c…","key":"key_1a2b3c4d5e6f","ws":null,"model":"qwen-plus","think":true,"status":"ok",
     "in":12,"cached":0,"out":40,"reason":31,"ttft":12.3,"dur":210.5,"at":1732560000.123}

A line is written with one ``write()`` before the response's last frame, so a process killed with
``kill -9`` loses nothing (the kernel keeps the page); ``fsync`` runs in batches in the background
for machine crashes. Segments whose records are all in SQL are deleted. A segment nobody holds a
lock on belongs to a dead process: it is replayed into SQL (idempotently, by ``id``) and deleted.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import orjson

from thinkserve.platform.metering import UsageRecord

log = logging.getLogger(__name__)


def encode(record: UsageRecord) -> bytes:
    """One journal line (the ``cost_nano`` of a record is not journaled: SQL bills it; ``search``
    only when the request searched)."""
    line = {
        "id": record.id,
        "key": record.key_id,
        "ws": record.workspace,
        "model": record.model,
        "think": record.thinking,
        "status": record.status,
        "in": record.input_tokens,
        "cached": record.cached_tokens,
        "out": record.output_tokens,
        "reason": record.reasoning_tokens,
        "ttft": record.ttft_ms,
        "dur": record.duration_ms,
        "at": record.at,
    }
    if record.search_calls:
        line["search"] = record.search_calls
    return orjson.dumps(line) + b"\n"


def decode(line: bytes) -> UsageRecord:
    d = orjson.loads(line)
    return UsageRecord(
        id=d["id"],
        key_id=d["key"],
        workspace=d["ws"],
        model=d["model"],
        thinking=d["think"],
        status=d["status"],
        input_tokens=d["in"],
        cached_tokens=d["cached"],
        output_tokens=d["out"],
        reasoning_tokens=d["reason"],
        ttft_ms=d["ttft"],
        duration_ms=d["dur"],
        at=d["at"],
        # Journals written before search was metered have no "search".
        search_calls=d.get("search", 0),
    )


class Segment:
    """One journal file of this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Lock under a temporary name, then rename: another process looking for orphans never
        # sees a segment before its lock is held.
        hidden = path.with_name(f".{path.name}.new")
        self.fd = os.open(hidden, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, path)
        self.size = os.fstat(self.fd).st_size
        self.pending = 0
        """Records written here and not yet in SQL."""
        self.dirty = False
        self.closed = False

    def append(self, line: bytes) -> None:
        os.write(self.fd, line)
        self.size += len(line)
        self.pending += 1
        self.dirty = True

    def sync(self) -> None:
        if self.dirty and not self.closed:
            os.fsync(self.fd)
            # Only once it worked: a failed fsync is tried again at the next sync.
            self.dirty = False

    def close(self, *, delete: bool) -> None:
        if self.closed:
            return
        if delete:
            self.path.unlink(missing_ok=True)
        self.closed = True
        os.close(self.fd)


class Journal:
    """This process's segments; ``append`` is synchronous and cheap (one ``write()``)."""

    def __init__(self, folder: Path, *, max_segment_bytes: int = 8 << 20) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._max = max_segment_bytes
        self._stem = f"usage-{os.getpid()}-{secrets.token_hex(3)}"
        self._n = 0
        self.current = self._open()
        self._old: list[Segment] = []

    def _open(self) -> Segment:
        self._n += 1
        return Segment(self.folder / f"{self._stem}-{self._n:06d}.jsonl")

    def append(self, record: UsageRecord) -> Segment:
        segment = self.current
        segment.append(encode(record))
        if segment.size >= self._max:
            try:
                fresh = self._open()
            except OSError:
                # The record is written; a segment that cannot roll over yet keeps growing.
                log.exception(
                    "opening a new usage journal segment failed; %s keeps growing", segment.path.name
                )
                return segment
            self._old.append(segment)
            self.current = fresh
        return segment

    def committed(self, segment: Segment, count: int) -> None:
        """``count`` records of ``segment`` are now in SQL."""
        segment.pending -= count
        if segment.pending == 0 and segment is not self.current:
            self._old.remove(segment)
            segment.close(delete=True)

    def segments(self) -> list[Segment]:
        return [*self._old, self.current]

    def sync(self) -> None:
        for segment in self.segments():
            segment.sync()

    def close(self) -> None:
        """Close every segment, deleting those whose records are all in SQL."""
        for segment in self.segments():
            segment.sync()
            segment.close(delete=segment.pending == 0)


def orphans(folder: Path) -> Iterator[tuple[Path, int]]:
    """Segments of dead processes, each with an open fd holding its lock (close it when done)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("usage-*.jsonl")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        yield path, fd


def read_records(fd: int) -> list[UsageRecord]:
    """The records of a segment; a torn last line (a machine crash mid-write) is skipped."""
    with os.fdopen(os.dup(fd), "rb") as f:
        data = f.read()
    out: list[UsageRecord] = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(decode(line))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("journal line %d is damaged; skipped", number)
    return out
