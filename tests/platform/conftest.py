"""Fixtures of the platform tests: a database of each kind, Redis, a server process.

PostgreSQL and Redis are found at ``THINKSERVE_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and ``THINKSERVE_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); where they do not answer, the tests that need them are skipped with
the reason (shown by ``pytest -ra``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("THINKSERVE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("THINKSERVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_KEY = "sk-admin-bootstrap-test"
_ROOT = Path(__file__).resolve().parents[2]


async def _pg_admin(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    url = make_url(PG_URL)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
        timeout=5,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_database() -> Iterator[str]:
    name = "thinkserve_test_" + secrets.token_hex(4)
    try:
        asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
    except Exception as exc:  # any failure to reach it: skip, saying why
        pytest.skip(f"PostgreSQL not available at {PG_URL}: {type(exc).__name__}: {exc}")
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """A fresh database as given to settings: None (SQLite in the data folder) or a PostgreSQL URL."""
    if request.param == "sqlite":
        yield None
    else:
        yield from _pg_database()


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        pytest.skip(f"Redis not available at {REDIS_URL}: {type(exc).__name__}: {exc}")
    return REDIS_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, *, database: str | None = None, extra: str = "") -> Path:
    """A config file for a server on the fake engine with its data in ``folder``."""
    lines = [
        "[server]",
        f'data_dir = "{folder / "data"}"',
        f'api_keys = ["{ADMIN_KEY}"]',
    ]
    if database:
        lines.append(f'database_url = "{database}"')
    lines += ["[engines.default]", 'kind = "fake"', extra]
    path = folder / "thinkserve.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``thinkserve ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "thinkserve", "--log-level", "warning", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        cwd=_ROOT,
        env={**os.environ, "THINKSERVE_API_KEYS": ""},
    )


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(config: Path, *extra: str, log: Path) -> ServerProcess:
    """``thinkserve serve`` on a free port; returns once ``/health`` answers."""
    import httpx

    port = free_port()
    out = log.open("ab")
    command = [sys.executable, "-m", "thinkserve", "--log-level", "warning", "serve", "--config", str(config)]
    process = subprocess.Popen(
        [*command, "--port", str(port), *extra],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=_ROOT,
        env={**os.environ, "THINKSERVE_API_KEYS": ""},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return ServerProcess(process, base, log)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.1)
