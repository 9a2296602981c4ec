"""Usage records survive bad records and a bad disk: poison records are set aside (a dead-letter file
next to the journal), journal errors never reach the request, and the writer never dies."""

from __future__ import annotations

import asyncio
import errno
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from thinkserve.monitor.metrics import Metrics
from thinkserve.platform.dead_letter import DEAD_LETTER_FILE
from thinkserve.platform.journal import decode, encode
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.settings import PlatformSettings
from thinkserve.platform.stored_keys import StoredKeys

from .conftest import ADMIN_KEY, _pg_database


@pytest.fixture
def pg() -> Iterator[str]:
    yield from _pg_database()


def record(workspace: str | None = None) -> UsageRecord:
    return UsageRecord(
        id=uuid.uuid4().hex,
        key_id="key_test",
        workspace=workspace,
        model="qwen-plus",
        thinking=False,
        status="ok",
        input_tokens=5,
        cached_tokens=0,
        output_tokens=7,
        reasoning_tokens=0,
        ttft_ms=1.0,
        duration_ms=2.0,
        at=time.time(),
    )


# PostgreSQL refuses a NUL byte in a text column ("invalid byte sequence"): a poison record.
POISON = "ws\x00bad"


def settings(tmp_path: Path, database_url: str | None) -> PlatformSettings:
    return PlatformSettings(
        data_dir=tmp_path / "data", bootstrap_keys=(ADMIN_KEY,), database_url=database_url
    )


async def stored_ids(gate: StoredKeys) -> set[str]:
    return {r.id for r in await gate.store.rows(0)}


def dead_letters(tmp_path: Path) -> list[UsageRecord]:
    path = tmp_path / "data" / "journal" / DEAD_LETTER_FILE
    return [decode(line) for line in path.read_bytes().splitlines()] if path.exists() else []


@pytest.mark.anyio
async def test_poison_record_is_set_aside_and_the_rest_is_stored(pg: str, tmp_path: Path) -> None:
    metrics = Metrics()
    gate = await StoredKeys.start(settings(tmp_path, pg), observer=metrics)
    try:
        good = [record("ws") for _ in range(5)]
        bad = record(POISON)
        for r in [*good[:2], bad, *good[2:]]:
            await gate.record(r)
        async with asyncio.timeout(20):  # before: the writer retried the same batch forever
            await gate.flush()
        assert await stored_ids(gate) == {r.id for r in good}
        assert [r.id for r in dead_letters(tmp_path)] == [bad.id]
        assert metrics.registry.get_sample_value("thinkserve_usage_dead_letters_total") == 1.0
        # Metering goes on after it.
        later = record("ws")
        await gate.record(later)
        async with asyncio.timeout(20):
            await gate.flush()
        assert later.id in await stored_ids(gate)
    finally:
        await gate.aclose()
    # Nothing is left in the journal for the next start to trip on.
    assert not list((tmp_path / "data" / "journal").glob("usage-*.jsonl"))


@pytest.mark.anyio
async def test_replay_at_start_sets_poison_aside(pg: str, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "journal"
    folder.mkdir(parents=True)
    good = [record("ws") for _ in range(3)]
    bad = record(POISON)
    # The journal of a process that died before storing them.
    (folder / "usage-999999-abcdef-000001.jsonl").write_bytes(
        b"".join(encode(r) for r in [good[0], bad, *good[1:]])
    )
    async with asyncio.timeout(30):  # before: replay raised and the server would not start
        gate = await StoredKeys.start(settings(tmp_path, pg))
    try:
        assert await stored_ids(gate) == {r.id for r in good}
        assert [r.id for r in dead_letters(tmp_path)] == [bad.id]
        assert not list(folder.glob("usage-999999-*.jsonl"))
    finally:
        await gate.aclose()


def _no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.anyio
async def test_journal_write_error_never_reaches_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = Metrics()
    gate = await StoredKeys.start(settings(tmp_path, None), observer=metrics)
    try:
        monkeypatch.setattr(gate.writer._journal, "append", _no_space)
        r = record()
        await gate.record(r)  # before: OSError escaped into the request
        async with asyncio.timeout(10):
            await gate.flush()
        assert r.id in await stored_ids(gate)
        assert (
            metrics.registry.get_sample_value("thinkserve_usage_journal_failures_total", {"stage": "write"})
            == 1
        )
    finally:
        await gate.aclose()


@pytest.mark.anyio
async def test_fsync_error_keeps_the_writer_alive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics()
    gate = await StoredKeys.start(settings(tmp_path, None), observer=metrics)
    try:
        monkeypatch.setattr(gate.writer._journal, "sync", _no_space)
        first = record()
        await gate.record(first)
        async with asyncio.timeout(10):  # before: the OSError killed the writer task
            await gate.flush()
        monkeypatch.undo()
        second = record()
        await gate.record(second)
        async with asyncio.timeout(10):
            await gate.flush()
        assert {first.id, second.id} <= await stored_ids(gate)
        assert (
            metrics.registry.get_sample_value("thinkserve_usage_journal_failures_total", {"stage": "fsync"})
            == 1
        )
    finally:
        await gate.aclose()


@pytest.mark.anyio
async def test_writer_survives_its_own_errors(tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, None))
    calls: list[dict[str, int]] = []

    def flaky(added: dict[str, int]) -> None:
        calls.append(added)
        if len(calls) == 1:
            raise RuntimeError("a bug in a callback")

    gate.writer._on_commit = flaky
    try:
        first, second = record(), record()
        await gate.record(first)
        async with asyncio.timeout(10):
            await gate.flush()
        await gate.record(second)
        async with asyncio.timeout(10):
            await gate.flush()
        assert {first.id, second.id} <= await stored_ids(gate)
        assert gate.writer._task is not None and not gate.writer._task.done()
    finally:
        await gate.aclose()
