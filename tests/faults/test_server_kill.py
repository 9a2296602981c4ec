"""kill -9 of the whole server under 32 concurrent streams, on the tiny real model: after a
restart, every request whose client got the stream's last frame has its usage record (with the
usage the client was shown), none twice, and the engine process of the killed server is gone."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from tests.engine.conftest import engine_model
from tests.faults.test_soak import engine_pid
from tests.platform.conftest import start_server

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)
KEY = "sk-kill"
STREAMS = 32


async def stream_until_killed(base: str, kill: Callable[[], None]) -> list[tuple[int, int]]:
    """Usage (input, output) of every stream that got ``[DONE]`` before the server died; the
    server is killed once 2 x STREAMS streams finished (all 32 then busy), or after 120 s."""
    finished: list[tuple[int, int]] = []
    limits = httpx.Limits(max_connections=STREAMS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        give_up = time.monotonic() + 120

        async def worker(i: int) -> None:
            n = 0
            while True:
                n += 1
                body = {
                    "model": "qwen-plus",
                    "messages": [{"role": "user", "content": f"Count to {i * 100 + n}."}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "max_tokens": 16,
                }
                headers = {"Authorization": f"Bearer {KEY}"}
                try:
                    path = "/compatible-mode/v1/chat/completions"
                    async with client.stream("POST", path, json=body, headers=headers) as r:
                        lines = [x async for x in r.aiter_lines() if x.startswith("data:")]
                except httpx.HTTPError:
                    return  # the server is gone
                if lines and lines[-1] == "data: [DONE]":
                    usage = orjson.loads(lines[-2][5:])["usage"]
                    finished.append((usage["prompt_tokens"], usage["completion_tokens"]))

        async def killer() -> None:
            while True:
                if len(finished) >= 2 * STREAMS or time.monotonic() > give_up:
                    break
                await asyncio.sleep(0.05)
            kill()

        await asyncio.gather(killer(), *(worker(i) for i in range(STREAMS)))
    return finished


def test_kill_9_under_32_streams_loses_no_finished_request(tmp_path: Path) -> None:
    config = tmp_path / "thinkserve.toml"
    config.write_text(
        f'[server]\napi_keys = ["{KEY}"]\ndata_dir = "{tmp_path}"\n'
        f'[engines.default]\nmodel = "{engine_model()}"\nn_ctx = 4096\nn_seq = 8\n'
    )
    server = start_server(config, log=tmp_path / "server.log")
    engine = engine_pid(server.process.pid)
    finished = asyncio.run(stream_until_killed(server.base_url, server.process.kill))
    server.process.wait(10)
    assert server.process.returncode == -9
    assert len(finished) >= 2 * STREAMS, len(finished)
    # The engine process notices its gateway is gone and stops.
    deadline = time.monotonic() + 30
    while Path(f"/proc/{engine}").exists():
        assert time.monotonic() < deadline, "the engine process outlived its gateway"
        time.sleep(0.1)

    restarted = start_server(config, log=tmp_path / "server.log")  # replays the journal
    restarted.stop()
    with sqlite3.connect(tmp_path / "thinkserve.db") as db:
        rows = db.execute("SELECT id, status, input_tokens, output_tokens FROM usage").fetchall()
    assert len({row[0] for row in rows}) == len(rows)
    ok = Counter((row[2], row[3]) for row in rows if row[1] == "ok")
    missing = Counter(finished) - ok
    assert not missing, missing
    # Records of streams that were cut by the kill after their record was journaled: at most one
    # per stream in flight.
    assert sum(ok.values()) - len(finished) <= STREAMS
    log.info(
        "kill -9 under %d streams: %d streams finished before it, %d ok records after the restart "
        "(%d of streams cut after their record), %d records in all, 0 missing, 0 twice",
        STREAMS,
        len(finished),
        sum(ok.values()),
        sum(ok.values()) - len(finished),
        len(rows),
    )
