"""Disconnect storm: 200 concurrent streams against `thinkserve serve` on the tiny real model
(engine in its own process), most of them cut by their client at a random moment: while waiting
for a place, after a few frames, or not at all. Afterwards:

- every request has at most one usage record, and each one whose client saw a response has one;
- metered output tokens equal the tokens the engine sampled, exactly (a cancelled stream's record
  waits for the engine's answer to the cancel, so tokens sampled in the meantime count too);
- every engine slot is free, nothing is in flight and nothing waits.

Each request's prompt has a length of its own, so its record is told apart by ``input_tokens``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine.conftest import engine_model
from tests.faults.test_soak import metric, wait_idle
from tests.platform.conftest import ServerProcess, start_server

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)
STREAMS = 200
KEYS = [f"sk-storm-{i}" for i in range(8)]  # 25 each: within one key's fair share (8 + 32)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "thinkserve.toml"
    config.write_text(
        f'[server]\napi_keys = {KEYS!r}\ndata_dir = "{tmp_path}"\n'
        f'[engines.default]\nmodel = "{engine_model()}"\nn_ctx = 16384\nn_seq = 8\nmax_queue = 256\n'
    )
    running = start_server(config, log=tmp_path / "server.log")
    try:
        yield running
    finally:
        running.stop()


async def storm(base: str, rng: random.Random) -> dict[int, str]:
    """Run the streams; returns how each ended, by the number of words in its prompt."""
    ended: dict[int, str] = {}
    limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def one(i: int, plan: str, frames: int, delay: float) -> None:
            body = {
                "model": "qwen-plus",
                "messages": [{"role": "user", "content": "Count the words:" + " word" * i}],
                "stream": True,
                "max_tokens": 48,
                "temperature": 0.8,
            }
            headers = {"Authorization": f"Bearer {KEYS[i % len(KEYS)]}"}

            async def run() -> None:
                async with client.stream(
                    "POST", "/compatible-mode/v1/chat/completions", json=body, headers=headers
                ) as r:
                    assert r.status_code == 200, (r.status_code, await r.aread())
                    ended[i] = "started"
                    seen = 0
                    async for line in r.aiter_lines():
                        if line.startswith("data:"):
                            seen += 1
                            if plan == "frames" and seen >= frames:
                                ended[i] = f"cut after {seen} frames"
                                return
                            if line == "data: [DONE]":
                                ended[i] = "done"

            if plan == "early":
                # Gone at a random moment: maybe still waiting for a place, maybe streaming.
                try:
                    await asyncio.wait_for(run(), delay)
                except TimeoutError:
                    if ended.get(i) == "started":
                        ended[i] = "cut"
                return
            await run()

        plans = []
        for i in range(STREAMS):
            plan = rng.choice(["early", "frames", "frames", "whole"])
            plans.append(one(i, plan, rng.randint(1, 12), rng.uniform(0.05, 3.0)))
        await asyncio.gather(*plans)
    return ended


def test_disconnect_storm_meters_every_token_once(server: ServerProcess, tmp_path: Path) -> None:
    rng = random.Random(20261126)
    before = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    sampled_before = metric(before, "thinkserve_engine_sampled_tokens_total")
    ended = asyncio.run(storm(server.base_url, rng))
    assert ended, "no stream started"

    text = wait_idle(server.base_url, 30)
    sampled = metric(text, "thinkserve_engine_sampled_tokens_total") - sampled_before
    server.stop()  # drains: every record reaches the database

    with sqlite3.connect(tmp_path / "thinkserve.db") as db:
        rows = db.execute("SELECT input_tokens, output_tokens, status FROM usage").fetchall()
    # Cut while waiting for a place in the engine: recorded as cancelled, with nothing evaluated.
    unplaced = [row for row in rows if row[0] == 0]
    assert all(row[1:] == (0, "cancelled") for row in unplaced), unplaced
    per_prompt = Counter(row[0] for row in rows if row[0])
    assert max(per_prompt.values()) == 1, [k for k, n in per_prompt.items() if n > 1]
    # One record per client that saw a response; those cut before it may have none.
    assert len(rows) >= len(ended), (len(rows), len(ended))
    assert len(rows) <= STREAMS
    metered = sum(row[1] for row in rows)
    assert metered == sampled > 0, (metered, sampled)
    statuses = Counter(row[2] for row in rows)
    outcomes = Counter(v.split(" after")[0] for v in ended.values())
    log.info(
        "disconnect storm: %d streams, %d saw a response (%s), %d records (%s; %d cut before a place), "
        "%d output tokens metered = %d sampled by the engine",
        STREAMS,
        len(ended),
        dict(outcomes),
        len(rows),
        dict(statuses),
        len(unplaced),
        metered,
        int(sampled),
    )
    assert statuses["cancelled"] > 0 and statuses["ok"] > 0, statuses
