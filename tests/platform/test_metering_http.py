"""Metering over real HTTP: 200 concurrent streams, many cut short by their clients.

Every request is tagged by its workspace header (``req-N``) to find its record.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx

from tests.conftest import serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform import database
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.store import Store
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

from .conftest import ADMIN_KEY

N = 200


async def _client(base: str, i: int, rng: random.Random) -> str:
    """One request; returns how it ended for the client: done, cut or refused."""
    cut = rng.random() < 0.5
    after = rng.randint(0, 60)
    body = {
        "model": "qwen3-8b",
        "messages": [{"role": "user", "content": f"question {i}"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "enable_thinking": rng.random() < 0.7,
    }
    headers = {"authorization": f"Bearer {ADMIN_KEY}", "x-dashscope-workspace": f"req-{i}"}
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream(
            "POST", base + "/compatible-mode/v1/chat/completions", json=body, headers=headers
        ) as response:
            if response.status_code != 200:
                return "refused"
            lines = 0
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    return "done"
                lines += 1
                if cut and lines >= after:
                    return "cut"  # leaving the block closes the connection mid-stream
    return "cut"


async def _wait_for_rows(url: str, count: int) -> list[UsageRecord]:
    store = Store(database.make_engine(url))
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = await store.rows(0)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.1)
    finally:
        await store.close()


def test_every_stream_has_one_record_with_the_tokens_generated(db: str | None, tmp_path: Path) -> None:
    engine = FakeEngine(delay=0.002)
    settings = Settings(api_keys=(ADMIN_KEY,), data_dir=tmp_path / "data", database_url=db)
    app = create_app(settings, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    live, running = serve(app)
    try:

        async def load() -> list[str]:
            rng = random.Random(4)
            return await asyncio.gather(*(_client(live.base_url, i, rng) for i in range(N)))

        outcomes = asyncio.run(load())
        rows = asyncio.run(_wait_for_rows(database.database_url(db, settings.data_dir), N))
        deadline = time.monotonic() + 30
        while engine.stats.active and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop(running)
    assert outcomes.count("refused") == 0
    assert 20 < outcomes.count("cut") < N - 20, outcomes
    by_request: dict[str, list[UsageRecord]] = {}
    for row in rows:
        assert row.workspace is not None
        by_request.setdefault(row.workspace, []).append(row)
    assert sorted(by_request) == sorted(f"req-{i}" for i in range(N))
    assert all(len(found) == 1 for found in by_request.values())
    for i, outcome in enumerate(outcomes):
        [row] = by_request[f"req-{i}"]
        if outcome == "done":
            assert row.status == "ok"
        assert row.status in ("ok", "cancelled"), row
    assert any(row.status == "cancelled" for row in rows)
    assert engine.stats.active == 0
    assert sum(row.output_tokens for row in rows) == engine.stats.sampled_tokens
