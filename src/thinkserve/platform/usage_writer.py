"""Moves journaled usage into SQL in batches, in the background (imports platform modules).

``submit`` is what a request pays: one journal ``write()`` and a list append. The writer task
wakes, waits ``gather_s`` for more records, fsyncs the journal and commits the batch in one
transaction. Batching matters: committing every few records costs the event loop ~1-3 ms a request
under load (bench/metering.py); every 0.2 s it is noise. When the database is down it retries with
backoff; the records wait in memory and in the journal, so a crash meanwhile loses nothing. A record
the database refuses is set aside (``dead_letter``), never retried forever in front of the others.

Nothing here may fail a request or stop the writer: a journal that cannot be written (a full or
broken disk) is logged and counted (``on_journal_failure``) and the record is kept in memory for SQL;
any other failure of the writer is logged and retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from thinkserve.platform.billing import Price
from thinkserve.platform.dead_letter import DeadLetters, StoreUnreachable, store_batch
from thinkserve.platform.journal import Journal, Segment, encode, orphans, read_records
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.store import Store

log = logging.getLogger(__name__)

BATCH = 500
MAX_BACKOFF_S = 5.0


async def replay_orphans(
    store: Store, folder: Path, prices: Mapping[str, Price], dead: DeadLetters | None = None
) -> int:
    """Store the journals of dead processes and delete them; returns how many records were read.

    Poison records go to the dead-letter file; a store that stops answering leaves the rest of the
    journals where they are, for the next scan (records already stored are skipped by id)."""
    dead = dead or DeadLetters(folder)
    count = 0
    for path, fd in orphans(folder):
        try:
            records = read_records(fd)
            for start in range(0, len(records), BATCH):
                await store_batch(store, records[start : start + BATCH], prices, dead, check_stored=True)
            path.unlink(missing_ok=True)
            count += len(records)
            if records:
                log.info("replayed %d usage records from %s", len(records), path.name)
        except StoreUnreachable as error:
            log.warning("replaying %s stopped, the store is unreachable (%s); will retry", path.name, error)
            return count
        finally:
            os.close(fd)
    return count


class UsageWriter:
    """The journal of this process and the task that moves its records into SQL."""

    def __init__(
        self,
        store: Store,
        journal_dir: Path,
        prices: Mapping[str, Price],
        *,
        gather_s: float = 0.2,
        on_commit: Callable[[dict[str, int]], None] | None = None,
        on_poison: Callable[[int], None] | None = None,
        on_journal_failure: Callable[[str], None] | None = None,
        orphan_scan_s: float = 60.0,
    ) -> None:
        self._store = store
        self._dir = journal_dir
        self._prices = prices
        self._gather = gather_s
        self._on_commit = on_commit
        self._on_journal_failure = on_journal_failure
        self._scan_every = orphan_scan_s
        self.dead = DeadLetters(journal_dir, on_poison)
        self._journal = Journal(journal_dir)
        self._queue: list[tuple[UsageRecord, Segment | None]] = []
        """Records not yet in SQL, each with its journal segment (None: the journal write failed)."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.committed = 0
        self._stopping = False
        self._closed = False
        self.failures = 0
        self.journal_failures = 0

    async def start(self) -> None:
        await replay_orphans(self._store, self._dir, self._prices, self.dead)
        self._task = asyncio.create_task(self._run(), name="thinkserve-usage-writer")

    def submit(self, record: UsageRecord) -> None:
        """Journal ``record`` now (synchronously) and queue it for SQL; never raises."""
        if self._closed:
            # A stream that outlived the shutdown: keep its record in the log at least.
            log.error("usage record after shutdown, not stored: %s", encode(record).decode().strip())
            return
        segment: Segment | None = None
        try:
            segment = self._journal.append(record)
        except Exception:
            # The disk is full or broken: the request must not fail for it. The record still goes
            # to SQL from memory; only a crash before that would lose it.
            self._journal_failed("write")
        self._queue.append((record, segment))
        self._idle.clear()
        self._wake.set()

    def _journal_failed(self, stage: str) -> None:
        self.journal_failures += 1
        log.exception("usage journal %s failed; records are kept in memory until stored", stage)
        if self._on_journal_failure is not None:
            self._on_journal_failure(stage)

    @property
    def backlog(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        """Wait until everything submitted so far is in SQL (or set aside as poison)."""
        self._wake.set()
        await self._idle.wait()

    async def _run(self) -> None:
        backoff = 0.1
        retrying = False
        last_scan = time.monotonic()
        while True:
            try:
                if not self._queue:
                    self._idle.set()
                    if self._stopping:
                        return
                    self._wake.clear()
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._scan_every):
                            await self._wake.wait()
                if self._queue and not self._stopping and len(self._queue) < BATCH and not retrying:
                    # Also under steady load: records that came during the last commit wait for more.
                    await asyncio.sleep(self._gather)
                await self._sync()
                if time.monotonic() - last_scan > self._scan_every:
                    last_scan = time.monotonic()
                    await replay_orphans(self._store, self._dir, self._prices, self.dead)
                await self._store_next(check_stored=retrying)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                retrying = True
                log.exception("storing %d usage records failed; retry in %.1f s", len(self._queue), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.1
            retrying = False

    async def _sync(self) -> None:
        if any(s.dirty for s in self._journal.segments()):
            try:
                await asyncio.to_thread(self._journal.sync)
            except Exception:
                self._journal_failed("fsync")

    async def _store_next(self, *, check_stored: bool) -> None:
        """Store the next batch (after a failure it may have been committed after all: skip stored
        ids); raises when the store is unreachable, leaving the batch queued."""
        batch = self._queue[:BATCH]
        if not batch:
            return
        records = [record for record, _ in batch]
        outcome = await store_batch(self._store, records, self._prices, self.dead, check_stored=check_stored)
        del self._queue[: len(batch)]
        self.committed += len(batch) - len(outcome.poisoned)
        counts: dict[Segment, int] = {}
        for _, segment in batch:
            if segment is not None:
                counts[segment] = counts.get(segment, 0) + 1
        for segment, n in counts.items():
            self._journal.committed(segment, n)
        if self._on_commit is not None:
            self._on_commit(outcome.added)

    async def close(self, drain_s: float = 10.0) -> None:
        """Store what is queued (for up to ``drain_s``), then stop; the rest stays journaled."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            try:
                async with asyncio.timeout(drain_s):
                    await asyncio.shield(task)
            except TimeoutError:
                log.warning("%d usage records left in the journal for the next start", len(self._queue))
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._closed = True
        with contextlib.suppress(OSError):
            self._journal.close()
