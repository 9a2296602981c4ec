"""PostgreSQL stopped and restarted under load: quick 503s in dialect (or success for keys seen
recently), no usage record lost, full service after, all by itself.

Each test runs its own PostgreSQL cluster (``initdb`` + ``pg_ctl``, as the ``postgres`` user when
run as root) on a free port and stops and restarts only that one; the machine's shared PostgreSQL is
never touched.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform import keys
from thinkserve.platform.database import database_url
from thinkserve.platform.store import Store
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

from .conftest import ADMIN_KEY, free_port


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return None if which is None else Path(which).parent


class OwnPostgres:
    """A PostgreSQL cluster of this test alone, in a temporary folder, on ``port``."""

    def __init__(self, bin_dir: Path, port: int) -> None:
        self.bin = bin_dir
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="thinkserve-pg-"))
        self.data = self.folder / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root.
            shutil.chown(self.folder, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def own_pg() -> Iterator[OwnPostgres]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    pg = OwnPostgres(bin_dir, free_port())
    try:
        try:
            pg.init()
            pg.start()
        except (subprocess.SubprocessError, OSError, LookupError) as exc:
            pytest.skip(f"cannot run an own PostgreSQL: {type(exc).__name__}: {exc}")
        yield pg
    finally:
        pg.remove()


OPENAI = "/compatible-mode/v1/chat/completions"
NATIVE = "/api/v1/services/aigc/text-generation/generation"


async def _count(url: str) -> int:
    store = await Store.open(database_url(url, Path()), migrate=False)
    try:
        return len(await store.rows(0))
    finally:
        await store.close()


async def _add_keys(url: str) -> tuple[str, str]:
    store = await Store.open(database_url(url, Path()))
    try:
        seen, seen_secret = keys.mint("seen", spend_limit_nano=10**15)
        unseen, unseen_secret = keys.mint("unseen")
        await store.add_key(seen)
        await store.add_key(unseen)
    finally:
        await store.close()
    return seen_secret, unseen_secret


def test_postgres_stopped_under_load(own_pg: OwnPostgres, tmp_path: Path) -> None:
    seen, unseen = asyncio.run(_add_keys(own_pg.url))
    engine = FakeEngine(delay=0.001)
    settings = Settings(
        api_keys=(ADMIN_KEY,),
        data_dir=tmp_path / "data",
        database_url=own_pg.url,
        database_connect_timeout_s=1.0,
        database_command_timeout_s=2.0,
    )
    app = create_app(settings, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    live, running = serve(app)
    openai = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
    native = {"model": "qwen-plus", "input": {"messages": [{"role": "user", "content": "hi"}]}}

    async def load(secret: str, n: int) -> list[tuple[httpx.Response, float]]:
        headers = {"authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=live.base_url, timeout=30, headers=headers) as client:

            async def one(i: int) -> tuple[httpx.Response, float]:
                start = time.monotonic()
                if i % 2:
                    response = await client.post(OPENAI, json=openai)
                else:
                    response = await client.post(NATIVE, json=native)
                return response, time.monotonic() - start

            return list(await asyncio.gather(*(one(i) for i in range(n))))

    def statuses(results: list[tuple[httpx.Response, float]]) -> list[int]:
        return [r.status_code for r, _ in results]

    # Steady load of the key seen before the outage, from its start to after its end.
    stop_load = threading.Event()
    steady: list[tuple[httpx.Response, float]] = []

    def background() -> None:
        while not stop_load.is_set():
            steady.extend(asyncio.run(load(seen, 8)))

    ok = 0
    loader = threading.Thread(target=background)
    try:
        before = asyncio.run(load(seen, 10))
        assert statuses(before) == [200] * 10
        ok += 10
        loader.start()
        time.sleep(1.0)
        own_pg.stop()
        # Past the key cache's 5 s: every lookup now goes to the database, which is gone.
        time.sleep(6.0)
        refused = asyncio.run(load(unseen, 6))
        assert statuses(refused) == [503] * 6
        for i, (response, took) in enumerate(refused):
            assert took < 5.0
            body = response.json()
            if i % 2:
                assert body["error"]["code"] and "unavailable" in body["error"]["message"]
            else:
                assert body["code"] and body["request_id"] and "unavailable" in body["message"]
        # The admin API: a quick 503 in its shape, not a 500.
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        for path in ("/admin/v1/usage", "/admin/v1/keys"):
            start = time.monotonic()
            response = httpx.get(live.base_url + path, headers=admin, timeout=30)
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert "unavailable" in response.json()["error"]["message"]
            assert time.monotonic() - start < 10.0
        own_pg.start()
        time.sleep(1.0)
        stop_load.set()
        loader.join(60)
        # Before: 500s. The key seen before the outage kept working (cached key, last known spend).
        assert len(steady) > 50
        assert set(statuses(steady)) == {200}, [r.text for r, _ in steady if r.status_code != 200][:3]
        assert max(took for _, took in steady) < 5.0
        ok += len(steady)
        # Full service after, by itself: a key never seen, and every record stored.
        deadline = time.monotonic() + 30
        while statuses(asyncio.run(load(unseen, 1))) != [200]:
            assert time.monotonic() < deadline, "service did not come back"
            time.sleep(0.5)
        ok += 1
        after = asyncio.run(load(unseen, 10))
        assert statuses(after) == [200] * 10
        ok += 10
        deadline = time.monotonic() + 30
        while (count := asyncio.run(_count(own_pg.url))) < ok:
            assert time.monotonic() < deadline, f"{count} usage records stored of {ok}"
            time.sleep(0.5)
        assert count == ok
    finally:
        stop_load.set()
        if loader.is_alive():
            loader.join(60)
        stop(running)
    assert asyncio.run(_count(own_pg.url)) == ok
    # An outage is not poison: nothing was set aside.
    assert not (tmp_path / "data" / "journal" / "dead-letter.jsonl").exists()


def test_database_timeouts_are_configurable(tmp_path: Path) -> None:
    from thinkserve.config import load_settings
    from thinkserve.core.errors import ConfigError
    from thinkserve.platform.database import make_engine

    config = tmp_path / "c.toml"
    config.write_text("[server]\ndatabase_connect_timeout = 0.5\ndatabase_timeout = 3\n")
    platform = load_settings(config, environ={}).platform
    assert (platform.database_connect_timeout_s, platform.database_command_timeout_s) == (0.5, 3.0)
    env = load_settings(config, environ={"THINKSERVE_DATABASE_TIMEOUT": "7"}).platform
    assert env.database_command_timeout_s == 7.0
    config.write_text('[server]\ndatabase_timeout = "soon"\n')
    with pytest.raises(ConfigError, match="database_timeout"):
        load_settings(config, environ={})
    # A database that accepts the connection and never answers (a hung or partitioned server):
    # before, a request waited for asyncpg's 60 s connect timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        engine = make_engine(f"postgresql+asyncpg://u@127.0.0.1:{port}/db", connect_timeout_s=0.5)
        started = time.monotonic()
        assert not asyncio.run(_ping_once(Store(engine)))
        assert time.monotonic() - started < 5


async def _ping_once(store: Store) -> bool:
    try:
        return await store.ping()
    finally:
        await store.close()
