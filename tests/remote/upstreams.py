"""Loopback engine servers (``token_server``, the real llama.cpp engine) as processes, and a gateway
serving them through ``kind = "remote"``: the same app ``thinkserve serve --upstream`` runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, TINY_MODEL, LiveServer, free_port, serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.remote.engine import RemoteEngine
from thinkserve.engine.remote.settings import RemoteSettings
from thinkserve.platform.static_keys import StaticKeys

ROOT = Path(__file__).parent.parent.parent


@dataclass
class Upstream:
    """One token_server process; ``kill`` and ``start`` again keep its port."""

    port: int
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Upstream:
        command = [sys.executable, "-m", "tests.remote.token_server", "--model", str(TINY_MODEL)]
        command += ["--port", str(self.port), *self.args]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"token_server exited: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "token_server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.url}/test/stats", timeout=5).json())


@contextmanager
def upstreams(*args: Sequence[str]) -> Iterator[list[Upstream]]:
    """One token_server per argument list, on free ports; killed at the end."""
    if not TINY_MODEL.is_file():
        pytest.skip(f"{TINY_MODEL} is missing")
    started: list[Upstream] = []
    try:
        for extra in args:
            started.append(Upstream(free_port(), list(extra)).start())
        yield started
    finally:
        for upstream in started:
            upstream.kill()


@contextmanager
def gateway(urls: Sequence[str | dict[str, Any]], **changes: Any) -> Iterator[LiveServer]:
    """The full app over a remote engine on ``urls`` (tokenizer: the tiny model's GGUF)."""
    changes.setdefault("health_interval", 0.2)
    changes.setdefault("eject_for", 1.0)
    remote = RemoteSettings("default", tokenizer=str(TINY_MODEL), upstreams=tuple(urls), **changes)  # type: ignore[arg-type]
    settings = Settings(api_keys=(API_KEY,), engines={"default": remote})
    live, running = serve(create_app(settings, gate=StaticKeys(settings.api_keys)))
    try:
        yield live
    finally:
        stop(running)


def remote_engine(live: LiveServer) -> RemoteEngine:
    engine = live.app.state.engines["default"]
    assert isinstance(engine, RemoteEngine)
    return engine


def wait_for(predicate: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
