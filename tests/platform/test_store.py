"""The SQL store on SQLite and PostgreSQL: migrations, keys, idempotent billed usage, the journal."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from thinkserve.platform import database, keys
from thinkserve.platform.billing import Price
from thinkserve.platform.journal import Journal, encode, orphans, read_records
from thinkserve.platform.limits import Limits
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.store import Store
from thinkserve.platform.usage_writer import replay_orphans

PRICES = {"m": Price(input=Decimal(1), output=Decimal(2), thinking_output=Decimal(4))}


def entry(
    n: int, *, key_id: str = "key_x", model: str = "m", out: int = 100, reasoning: int = 0
) -> UsageRecord:
    return UsageRecord(
        id=f"{n:032x}",
        key_id=key_id,
        workspace="ws",
        model=model,
        thinking=reasoning > 0,
        status="ok",
        input_tokens=100,
        cached_tokens=0,
        output_tokens=out,
        reasoning_tokens=reasoning,
        ttft_ms=5.0,
        duration_ms=50.0 + n,
        at=1_700_000_000.0 + n,
    )


async def open_store(db: str | None, tmp_path: Path) -> Store:
    return await Store.open(database.database_url(db, tmp_path / "data"))


@pytest.mark.anyio
async def test_migrations_are_idempotent_and_at_head(db: str | None, tmp_path: Path) -> None:
    store = await open_store(db, tmp_path)
    try:
        await database.upgrade(store.engine)
        await database.upgrade(store.engine)
        assert await database.current_revision(store.engine) == database.head_revision() == "0002"
    finally:
        await store.close()


@pytest.mark.anyio
async def test_keys_are_stored_hashed_and_revocable(db: str | None, tmp_path: Path) -> None:
    store = await open_store(db, tmp_path)
    try:
        key, secret = keys.mint("alice", workspace="w1", limits=Limits(rpm=5), quota_tokens=10)
        await store.add_key(key)
        found = await store.key_by_digest(keys.digest(secret))
        assert found == key
        assert secret not in repr(await store.keys())
        assert found is not None and found.digest == keys.digest(secret) and len(found.digest) == 64
        assert await store.key_by_digest(keys.digest(secret + "x")) is None
        assert await store.revoke(key.prefix, time.time())
        assert not await store.revoke(key.id, time.time())
        revoked = await store.key_by_digest(keys.digest(secret))
        assert revoked is not None and revoked.revoked_at is not None
        assert await store.keys(include_revoked=False) == []
    finally:
        await store.close()


@pytest.mark.anyio
async def test_usage_is_billed_once_with_free_quota(db: str | None, tmp_path: Path) -> None:
    store = await open_store(db, tmp_path)
    try:
        key, _ = keys.mint("bob", quota_tokens=300)
        await store.add_key(key)
        # 200 tokens each at 1/M in + 2/M out: 300 nano... per token; 300 free tokens over two requests.
        batch = [entry(i, key_id=key.id) for i in range(3)]
        added = await store.write(batch, PRICES)
        # each costs 100*1000 + 100*2000 = 300_000 nano; first free, second half free, third full
        assert added == {key.id: 0 + 150_000 + 300_000}
        # replaying the same records (a journal after a crash) stores and bills nothing twice
        assert await store.write(batch, PRICES) == {}
        assert await store.spent([key.id]) == {key.id: 450_000}
        rows = await store.rows(1_699_999_000)
        assert len(rows) == 3 and sum(r.cost_nano for r in rows) == 450_000
        thinking = await store.write([entry(10, key_id=key.id, reasoning=50)], PRICES)
        assert thinking == {key.id: 100 * 1000 + 100 * 4000}
        assert await store.rows(1_699_999_000, model="other") == []
    finally:
        await store.close()


def test_journal_segments_rotate_and_orphans_are_found(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    journal = Journal(folder, max_segment_bytes=600)
    segments = [journal.append(entry(i)) for i in range(6)]
    assert len({id(s) for s in segments}) > 1  # rotated
    # this process holds the locks: nothing is an orphan
    assert list(orphans(folder)) == []
    first = segments[0]
    journal.committed(first, sum(1 for s in segments if s is first))
    assert not first.path.exists()  # all its records are in SQL
    journal.close()
    found = list(orphans(folder))
    try:
        entries = [e for _, fd in found for e in read_records(fd)]
    finally:
        for _, fd in found:
            os.close(fd)
    assert sorted(e.id for e in entries) == sorted(entry(i).id for i in range(6) if segments[i] is not first)


def test_torn_journal_line_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    folder.mkdir()
    path = folder / "usage-1-aaaaaa-000001.jsonl"
    path.write_bytes(encode(entry(1)) + encode(entry(2))[:30])
    [(_, fd)] = list(orphans(folder))
    try:
        assert [e.id for e in read_records(fd)] == [entry(1).id]
    finally:
        os.close(fd)


@pytest.mark.anyio
async def test_orphan_journals_are_replayed(db: str | None, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "journal"
    journal = Journal(folder)
    for i in range(5):
        journal.append(entry(i))
    journal.close()  # pending records: the segment stays, as after a crash
    store = await open_store(db, tmp_path)
    try:
        assert await replay_orphans(store, folder, PRICES) == 5
        assert list(folder.glob("*.jsonl")) == []
        assert len(await store.rows(1_699_999_000)) == 5
    finally:
        await store.close()
