"""Shared fixtures: apps over the fake or a real engine, served by a live uvicorn on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.engine.protocol import Engine
from thinkserve.platform.port import Gate
from thinkserve.platform.static_keys import StaticKeys
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

API_KEY = "sk-test-key"
FIXTURES = Path(__file__).parent / "fixtures"
TINY_MODEL = Path(os.environ.get("THINKSERVE_TINY_MODEL", FIXTURES / "tiny-qwen3.gguf"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    app: Starlette

    @property
    def openai_base(self) -> str:
        return f"{self.base_url}/compatible-mode/v1"

    @property
    def dashscope_base(self) -> str:
        return f"{self.base_url}/api/v1/"


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread


def serve(app: Starlette) -> tuple[LiveServer, _Running]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", app), _Running(server, thread)


def stop(running: _Running) -> None:
    running.server.should_exit = True
    running.thread.join(timeout=30)


def app_with(
    engine: Engine,
    *,
    settings: Settings | None = None,
    models: Mapping[str, object] | None = None,
    gate: Gate | None = None,
) -> Starlette:
    """An app over ``engine``; API tests use the static-key gate (tests/platform cover the platform)."""
    base = settings or Settings(api_keys=(API_KEY,))
    if models is not None:
        base = replace(base, models={**base.models, **models})  # type: ignore[dict-item]
    runtimes = {"default": Runtime(engine, ChatFormat(engine.tokenizer))}
    return create_app(base, runtimes=runtimes, gate=gate or StaticKeys(base.api_keys))


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def fake_server(fake_engine: FakeEngine) -> Iterator[LiveServer]:
    live, running = serve(app_with(fake_engine))
    try:
        yield live
    finally:
        stop(running)
