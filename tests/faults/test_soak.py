"""Soak: 64 concurrent streams (16 on each of 4 keys) for a bounded time against `thinkserve serve`
on the tiny real model (engine in its own process). Every stream completes; afterwards nothing is
left in flight, every engine slot is free, metered output tokens equal the tokens the engine
sampled, and the memory of both processes is flat after warm-up (the slopes are logged;
docs/reliability.md has a run).

THINKSERVE_SOAK_SECONDS sets the duration (default 20)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine.conftest import engine_model
from tests.platform.conftest import ServerProcess, start_server

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)
# Four tenants: one key may hold at most n_seq running + 32 waiting requests (fair admission).
KEYS = [f"sk-soak-{i}" for i in range(4)]
STREAMS = 64
SECONDS = float(os.environ.get("THINKSERVE_SOAK_SECONDS", "20"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("soak")
    config = home / "thinkserve.toml"
    config.write_text(
        f'[server]\napi_keys = {KEYS!r}\ndata_dir = "{home}"\n'
        f'[engines.default]\nmodel = "{engine_model()}"\nn_ctx = 8192\nn_seq = 8\n'
    )
    running = start_server(config, log=home / "server.log")
    try:
        yield running
    finally:
        running.stop()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def engine_pid(gateway: int) -> int:
    children = Path(f"/proc/{gateway}/task/{gateway}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def slope_kb_per_s(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, after the first third (warm-up)."""
    kept = samples[len(samples) // 3 :]
    ts, vs = [t for t, _ in kept], [float(v) for _, v in kept]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (v - mv) for t, v in zip(ts, vs, strict=True)) / den if den else 0.0


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_idle(base: str, within: float) -> str:
    """The server's /metrics once nothing is in flight, running or waiting (asserts it gets there)."""
    deadline = time.monotonic() + within
    while True:
        text = httpx.get(f"{base}/metrics", timeout=10).text
        idle = (
            metric(text, "thinkserve_requests_in_flight") == 0
            and metric(text, "thinkserve_engine_active_sequences") == 0
            and metric(text, "thinkserve_engine_queue_depth") == 0
        )
        if idle or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert idle, re.findall(r"^thinkserve_(?:requests_in_flight|engine_active|engine_queue).*$", text, re.M)
    return text


async def soak(base: str) -> tuple[int, list[str]]:
    done = 0
    failures: list[str] = []
    deadline = time.monotonic() + SECONDS
    limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=STREAMS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def worker(i: int) -> None:
            nonlocal done
            n = 0
            while time.monotonic() < deadline:
                n += 1
                body = {
                    "model": "qwen-plus",
                    "messages": [{"role": "user", "content": f"Tell me about the number {i * 1000 + n}."}],
                    "stream": True,
                    "enable_thinking": n % 2 == 0,
                    "max_tokens": 24,
                    "temperature": 0.7,
                }
                headers = {"Authorization": f"Bearer {KEYS[i % len(KEYS)]}"}
                async with client.stream(
                    "POST", "/compatible-mode/v1/chat/completions", json=body, headers=headers
                ) as r:
                    lines = [line async for line in r.aiter_lines() if line.startswith("data:")]
                if r.status_code != 200 or lines[-1] != "data: [DONE]" or any('"error"' in x for x in lines):
                    failures.append(f"{r.status_code}: {lines[-2:]}")
                else:
                    done += 1

        await asyncio.gather(*(worker(i) for i in range(STREAMS)))
    return done, failures


def test_64_streams_leave_nothing_behind(server: ServerProcess) -> None:
    gateway = server.process.pid
    engine = engine_pid(gateway)
    samples: dict[str, list[tuple[float, int]]] = {"gateway": [], "engine": []}
    stop = False

    async def sample() -> None:
        start = time.monotonic()
        while not stop:
            now = time.monotonic() - start
            samples["gateway"].append((now, rss_kb(gateway)))
            samples["engine"].append((now, rss_kb(engine)))
            await asyncio.sleep(0.5)

    async def body() -> tuple[int, list[str]]:
        nonlocal stop
        sampler = asyncio.create_task(sample())
        try:
            return await soak(server.base_url)
        finally:
            stop = True
            await sampler

    done, failures = asyncio.run(body())
    assert not failures, failures[:5]
    assert done >= STREAMS

    text = wait_idle(server.base_url, 10)
    metered = metric(text, "thinkserve_tokens_total", kind="output")
    sampled = metric(text, "thinkserve_engine_sampled_tokens_total")
    assert metered == sampled > 0, (metered, sampled)
    assert metric(text, "thinkserve_requests_total", status="ok") == done

    slopes = {name: slope_kb_per_s(points) for name, points in samples.items()}
    log.info(
        "soak: %d streams for %.0f s, %d requests, %d output tokens; RSS slope after warm-up: "
        "gateway %.1f KB/s (%d KB at the end), engine %.1f KB/s (%d KB)",
        STREAMS,
        SECONDS,
        done,
        int(metered),
        slopes["gateway"],
        samples["gateway"][-1][1],
        slopes["engine"],
        samples["engine"][-1][1],
    )
    # Flat means no steady growth: a leak of a few KB per request would show as hundreds of KB/s.
    for name, slope in slopes.items():
        assert slope < 256, (name, slope, samples[name][-5:])
