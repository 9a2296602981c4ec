"""What the platform costs per request: StaticKeys vs the full platform, side by side in one run.

    .venv/bin/python bench/metering.py [--requests 2000] [--rounds 5] [--pg postgresql://postgres@127.0.0.1/test]

Two measurements, each per variant (StaticKeys; platform on SQLite; platform on PostgreSQL when it
answers):

* ``http``: sequential streaming chat requests over real HTTP (uvicorn in a thread, httpx
  keep-alive client) against the fake engine, rounds interleaved so that machine noise hits every
  variant alike;
* ``gate``: authenticate + admit + a metered 32-token stream + record, in process, no HTTP.

The platform variants use a stored key with RPM/TPM limits and model limits from the settings, so
that key lookup (cached), the limiter, the journal and the background SQL writer all run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy.engine import make_url

from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.core.events import AnswerDelta, Event, Finished
from thinkserve.core.types import Usage
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform import keys
from thinkserve.platform.billing import Price
from thinkserve.platform.limits import Limits
from thinkserve.platform.metering import metered
from thinkserve.platform.port import Gate
from thinkserve.platform.static_keys import StaticKeys
from thinkserve.platform.stored_keys import StoredKeys
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

BOOT = "sk-bench-bootstrap"
BODY = {
    "model": "qwen-plus",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


@dataclass
class Variant:
    name: str
    settings: Settings | None  # None: StaticKeys
    key: str = BOOT
    base_url: str = ""
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None


def settings_for(data_dir: Path, database_url: str | None) -> Settings:
    return Settings(
        api_keys=(BOOT,),
        data_dir=data_dir,
        database_url=database_url,
        limits={"qwen-plus": Limits(rpm=10_000_000, tpm=1_000_000_000, concurrency=64)},
        prices={"qwen-plus": Price(input=Decimal("0.8"), output=Decimal(2), thinking_output=Decimal(8))},
    )


async def add_key(settings: Settings) -> str:
    gate = await StoredKeys.start(settings.platform)
    try:
        key, secret = keys.mint("bench", limits=Limits(rpm=10_000_000, tpm=1_000_000_000))
        await gate.create_key(key)
        return secret
    finally:
        await gate.aclose()


def start(variant: Variant) -> None:
    engine = FakeEngine()
    runtimes = {"default": Runtime(engine, ChatFormat(engine.tokenizer))}
    settings = variant.settings or Settings(api_keys=(BOOT,))
    gate = StaticKeys([BOOT]) if variant.settings is None else None
    app = create_app(settings, runtimes=runtimes, gate=gate)
    sock_port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=sock_port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"{variant.name}: server did not start")
        time.sleep(0.02)
    variant.base_url, variant.server, variant.thread = f"http://127.0.0.1:{sock_port}", server, thread


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_round(variant: Variant, client: httpx.Client, n: int) -> list[float]:
    out = []
    headers = {"authorization": f"Bearer {variant.key}"}
    url = variant.base_url + "/compatible-mode/v1/chat/completions"
    for _ in range(n):
        t = time.perf_counter()
        with client.stream("POST", url, json=BODY, headers=headers) as response:
            for _ in response.iter_bytes():
                pass
        if response.status_code != 200:
            raise RuntimeError(f"{variant.name}: HTTP {response.status_code}")
        out.append(time.perf_counter() - t)
    return out


async def _events() -> AsyncIterator[Event]:
    for i in range(1, 33):
        yield AnswerDelta("x", Usage(20, 0, i, 0))
    yield Finished("stop", Usage(20, 0, 32, 0), False)


async def gate_times(gate: Gate, key: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        principal = await gate.authenticate(f"Bearer {key}", None)
        admission = await gate.admit(principal, "qwen-plus", 20)
        async for _ in metered(gate, admission, False, _events()):
            pass
        out.append(time.perf_counter() - t)
    return out


async def gate_bench(variants: list[Variant], n: int, rounds: int) -> dict[str, list[float]]:
    gates: dict[str, Gate] = {}
    for v in variants:
        gates[v.name] = (
            StaticKeys([BOOT]) if v.settings is None else await StoredKeys.start(v.settings.platform)
        )
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    try:
        for r in range(rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                times[v.name] += await gate_times(gates[v.name], v.key, n)
    finally:
        for gate in gates.values():
            if isinstance(gate, StoredKeys):
                await gate.aclose()
    return times


def pg_database(url: str) -> tuple[str, Callable[[], None]] | None:
    import asyncpg  # type: ignore[import-untyped]

    name = "thinkserve_bench_" + secrets.token_hex(4)
    parsed = make_url(url)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            database=parsed.database,
            timeout=5,
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f"CREATE DATABASE {name}"))
    except Exception as exc:
        print(f"PostgreSQL not measured ({url}): {exc}", file=sys.stderr)
        return None
    return parsed.set(database=name).render_as_string(hide_password=False), lambda: asyncio.run(
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    )


def summary(name: str, times: list[float], base: list[float] | None) -> str:
    p50 = statistics.median(times) * 1000
    p95 = statistics.quantiles(times, n=20)[18] * 1000
    line = f"{name:<22} n={len(times):<6} p50={p50:8.3f} ms  p95={p95:8.3f} ms"
    if base is not None:
        b50 = statistics.median(base) * 1000
        b95 = statistics.quantiles(base, n=20)[18] * 1000
        line += f"  ratio p50={p50 / b50:5.2f}  overhead p50={p50 - b50:+.3f} ms p95={p95 - b95:+.3f} ms"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="per variant, over all rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    per_round = max(1, args.requests // args.rounds)
    tmp = Path(tempfile.mkdtemp(prefix="thinkserve-bench-"))
    variants = [Variant("StaticKeys", None), Variant("platform/SQLite", settings_for(tmp / "sqlite", None))]
    cleanup: Callable[[], None] | None = None
    if args.pg and (pg := pg_database(args.pg)) is not None:
        url, cleanup = pg
        variants.append(Variant("platform/PostgreSQL", settings_for(tmp / "pg", url)))
    try:
        for v in variants:
            if v.settings is not None:
                v.key = asyncio.run(add_key(v.settings))
        print(f"gate only: {per_round * args.rounds} requests per variant, {args.rounds} interleaved rounds")
        gate = asyncio.run(gate_bench(variants, per_round, args.rounds))
        for v in variants:
            print(summary(v.name, gate[v.name], None if v.settings is None else gate["StaticKeys"]))
        for v in variants:
            start(v)
        http: dict[str, list[float]] = {v.name: [] for v in variants}
        with httpx.Client(timeout=30) as client:
            for v in variants:
                http_round(v, client, 50)  # warm up connections and caches
            for r in range(args.rounds):
                for v in variants if r % 2 == 0 else variants[::-1]:
                    http[v.name] += http_round(v, client, per_round)
        print(f"\nHTTP streaming: {per_round * args.rounds} sequential requests per variant")
        for v in variants:
            print(summary(v.name, http[v.name], None if v.settings is None else http["StaticKeys"]))
        for v in variants:
            if v.server is not None and v.thread is not None:
                v.server.should_exit = True
                v.thread.join(30)
    finally:
        if cleanup is not None:
            cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
