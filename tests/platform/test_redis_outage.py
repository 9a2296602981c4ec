"""Redis down or partitioned under the rate limiter: no 500, no hang, no leaked slot, back by itself.

Each test runs its own ``redis-server`` on a free port and stops, pauses (SIGSTOP: a partition, the
socket stays open and nothing answers) and restarts that one; the machine's shared Redis is never
touched.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.conftest import serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings, load_settings
from thinkserve.core.errors import ConfigError, ErrorKind, RateLimited
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform import keys
from thinkserve.platform.limits import Limits, RateLimiterUnavailable
from thinkserve.platform.settings import PlatformSettings
from thinkserve.platform.stored_keys import StoredKeys
from thinkserve.platform.throttle import RETRY_S
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

from .conftest import ADMIN_KEY, free_port

TIMEOUT_S = 0.3


class OwnRedis:
    """A ``redis-server`` of this test alone, on ``port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
                client.ping()
                client.close()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _settings(tmp_path: Path, redis: OwnRedis, failure: str) -> PlatformSettings:
    return PlatformSettings(
        data_dir=tmp_path / "data",
        bootstrap_keys=(ADMIN_KEY,),
        redis_url=redis.url,
        redis_timeout_s=TIMEOUT_S,
        redis_failure=failure,  # type: ignore[arg-type]
        limits={"*": Limits(rpm=100_000, tpm=10_000_000, concurrency=50)},
    )


async def _admit_all(gate: StoredKeys, secret: str, n: int) -> list[str]:
    principal = await gate.authenticate(f"Bearer {secret}", None)

    async def one() -> str:
        try:
            admission = await gate.admit(principal, "m", 10)
        except RateLimiterUnavailable as error:
            assert error.kind is ErrorKind.OVERLOADED
            return "unavailable"
        except RateLimited as error:
            return error.code
        await asyncio.sleep(0.01)
        admission.release()
        return "ok"

    async with asyncio.timeout(10):  # before the fix, a paused Redis hung here for good
        return list(await asyncio.gather(*(one() for _ in range(n))))


@pytest.mark.anyio
async def test_fail_closed_gives_503_frees_slots_and_recovers(own_redis: OwnRedis, tmp_path: Path) -> None:
    gate = await StoredKeys.start(_settings(tmp_path, own_redis, "closed"))
    try:
        key, secret = keys.mint("k", limits=Limits(rpm=10_000, tpm=1_000_000, concurrency=20))
        await gate.create_key(key)
        assert await _admit_all(gate, secret, 10) == ["ok"] * 10
        own_redis.stop()
        started = time.monotonic()
        assert await _admit_all(gate, secret, 20) == ["unavailable"] * 20
        assert time.monotonic() - started < 4 * TIMEOUT_S + 1
        assert gate.in_flight == {}  # every slot taken before the Redis call went back
        # A partition: Redis accepts the connection and never answers; the timeout ends the wait.
        own_redis.start()
        await asyncio.sleep(RETRY_S + 0.1)
        assert await _admit_all(gate, secret, 5) == ["ok"] * 5
        own_redis.pause()
        started = time.monotonic()
        assert await _admit_all(gate, secret, 5) == ["unavailable"] * 5
        assert time.monotonic() - started < 4 * TIMEOUT_S + 1
        assert gate.in_flight == {}
        own_redis.resume()
        await asyncio.sleep(RETRY_S + 0.1)
        assert await _admit_all(gate, secret, 20) == ["ok"] * 20
        assert gate.in_flight == {}
    finally:
        own_redis.resume()
        await gate.aclose()


@pytest.mark.anyio
async def test_fail_local_keeps_limits_per_process(own_redis: OwnRedis, tmp_path: Path) -> None:
    failures: list[str] = []

    class Observer:
        def admitted(self, model: str) -> None: ...
        def released(self, model: str) -> None: ...
        def refused(self, model: str, code: str) -> None: ...
        def finished(self, *args: object) -> None: ...
        def backlog(self, records: int) -> None: ...
        def rate_limiter_failed(self, outcome: str) -> None:
            failures.append(outcome)

    gate = await StoredKeys.start(_settings(tmp_path, own_redis, "local"), observer=Observer())  # type: ignore[arg-type]
    try:
        key, secret = keys.mint("k", limits=Limits(rpm=30, rps=100, concurrency=45))
        await gate.create_key(key)
        assert await _admit_all(gate, secret, 10) == ["ok"] * 10
        own_redis.stop()
        # Redis no longer counts: the key's 30 a minute hold in this process alone.
        got = await _admit_all(gate, secret, 40)
        assert got.count("ok") == 30 and got.count("Throttling.RateQuota") == 10, got
        assert failures and set(failures) == {"local"}
        assert gate.in_flight == {}
        own_redis.start()
        await asyncio.sleep(RETRY_S + 0.1)
        # Back on Redis (restarted empty: its window is new; the local one, full, is not asked).
        got = await _admit_all(gate, secret, 35)
        assert got.count("ok") == 30 and got.count("Throttling.RateQuota") == 5, got
        assert gate.in_flight == {}
    finally:
        await gate.aclose()


def test_redis_stopped_under_http_load_gives_503_in_dialect(own_redis: OwnRedis, tmp_path: Path) -> None:
    engine = FakeEngine(delay=0.001)
    settings = Settings(
        api_keys=(ADMIN_KEY,),
        data_dir=tmp_path / "data",
        redis_url=own_redis.url,
        redis_timeout_s=TIMEOUT_S,
        redis_failure="closed",
        limits={"*": Limits(rpm=100_000, concurrency=32)},
    )
    app = create_app(settings, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    live, running = serve(app)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    openai = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
    native = {"model": "qwen-plus", "input": {"messages": [{"role": "user", "content": "hi"}]}}

    async def load(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=20, headers=headers) as client:

            async def one(i: int) -> httpx.Response:
                if i % 2:
                    return await client.post("/compatible-mode/v1/chat/completions", json=openai)
                return await client.post("/api/v1/services/aigc/text-generation/generation", json=native)

            return list(await asyncio.gather(*(one(i) for i in range(n))))

    try:
        assert {r.status_code for r in asyncio.run(load(16))} == {200}
        own_redis.stop()
        started = time.monotonic()
        down = asyncio.run(load(16))
        assert time.monotonic() - started < 10
        assert {r.status_code for r in down} == {503}, [r.text for r in down]
        for response in down:
            body = response.json()
            if "error" in body:
                assert body["error"]["code"] == "service_unavailable"
            else:
                assert body["code"] == "ModelUnavailable" and "rate limiter" in body["message"]
        gate = app.state.thinkserve.gate.gate
        assert gate.in_flight == {}
        own_redis.start()
        time.sleep(RETRY_S + 0.1)
        assert {r.status_code for r in asyncio.run(load(16))} == {200}
        assert gate.in_flight == {}
        metrics = httpx.get(live.base_url + "/metrics").text
        assert 'thinkserve_rate_limiter_failures_total{outcome="refused"}' in metrics
    finally:
        stop(running)


def test_redis_failure_settings(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[server]\nredis_timeout = 2\nredis_failure = "closed"\n')
    settings = load_settings(config, environ={})
    assert (settings.platform.redis_timeout_s, settings.platform.redis_failure) == (2.0, "closed")
    defaults = load_settings(None, environ={})
    assert (defaults.platform.redis_timeout_s, defaults.platform.redis_failure) == (0.5, "local")
    env = load_settings(
        config, environ={"THINKSERVE_REDIS_TIMEOUT": "0.25", "THINKSERVE_REDIS_FAILURE": "local"}
    )
    assert (env.redis_timeout_s, env.redis_failure) == (0.25, "local")
    for bad in ('redis_timeout = "x"', "redis_timeout = 0", "redis_timeout = true", 'redis_failure = "open"'):
        config.write_text(f"[server]\n{bad}\n")
        with pytest.raises(ConfigError):
            load_settings(config, environ={})
    assert replace(defaults, redis_failure="closed").platform.redis_failure == "closed"
