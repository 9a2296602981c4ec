"""Storing usage records so that one bad record never blocks the others (imports platform modules).

A batch that fails is either a store that cannot be reached (retry it all later) or a batch holding
a record the store refuses (a value over a column's length, a NUL byte in a PostgreSQL text column):
retrying that batch as it is would fail forever. ``store_batch`` tells the two apart by asking the
store a trivial question (``Store.ping``): when it answers, the batch is retried record by record,
and each record the store still refuses is a poison record. Those are appended to the dead-letter
file, ``<data_dir>/journal/dead-letter.jsonl`` (journal lines, which ``journal.orphans`` never
replays), logged and counted; an operator can fix and re-import them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from thinkserve.platform.billing import Price
from thinkserve.platform.journal import encode
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.store import Store

log = logging.getLogger(__name__)

DEAD_LETTER_FILE = "dead-letter.jsonl"


class StoreUnreachable(Exception):
    """The store did not answer: the batch was not judged, retry it later as a whole."""


@dataclass
class Outcome:
    """What became of a batch: every record is either stored or set aside."""

    added: dict[str, int] = field(default_factory=dict)
    """Nano-units billed per key."""
    poisoned: list[UsageRecord] = field(default_factory=list)


class DeadLetters:
    """The dead-letter file next to the journal; ``on_poison`` hears how many records went there."""

    def __init__(self, folder: Path, on_poison: Callable[[int], None] | None = None) -> None:
        self.path = folder / DEAD_LETTER_FILE
        self._on_poison = on_poison
        self.count = 0

    def put(self, record: UsageRecord, error: BaseException) -> None:
        line = encode(record)
        log.error(
            "usage record %s refused by the store (%s: %s); set aside in %s",
            record.id,
            type(error).__name__,
            str(error).splitlines()[0][:300] if str(error) else "",
            self.path,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.count += 1
        if self._on_poison is not None:
            self._on_poison(1)


async def store_batch(
    store: Store,
    records: Sequence[UsageRecord],
    prices: Mapping[str, Price],
    dead: DeadLetters,
    *,
    check_stored: bool,
) -> Outcome:
    """Store ``records``, setting poison ones aside; raises ``StoreUnreachable`` when the store is down
    (then nothing was judged: some records may be stored, so retry with ``check_stored=True``)."""
    outcome = Outcome()
    if not records:
        return outcome
    try:
        outcome.added = await store.write(records, prices, check_stored=check_stored)
        return outcome
    except asyncio.CancelledError:
        raise
    except Exception as error:
        failure: Exception = error
    await _reachable(store, failure)
    # One at a time: the good ones are stored, each bad one is found.
    log.warning("storing %d usage records failed (%s); retrying one by one", len(records), failure)
    for record in records:
        try:
            added = await _write_one(store, record, prices)
        except asyncio.CancelledError:
            raise
        except Exception as single:
            await _reachable(store, single)
            dead.put(record, single)
            outcome.poisoned.append(record)
            continue
        for key, nano in added.items():
            outcome.added[key] = outcome.added.get(key, 0) + nano
    return outcome


async def _write_one(store: Store, record: UsageRecord, prices: Mapping[str, Price]) -> dict[str, int]:
    try:
        return await store.write([record], prices, check_stored=True)
    except asyncio.CancelledError:
        raise
    except Exception:
        # Once more: a transient failure (a deadlock, a serialization failure) is not poison.
        await asyncio.sleep(0.05)
        return await store.write([record], prices, check_stored=True)


async def _reachable(store: Store, error: BaseException) -> None:
    if not await store.ping():
        raise StoreUnreachable(str(error)) from error
