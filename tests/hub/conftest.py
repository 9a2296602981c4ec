"""Stand-in hubs on loopback, and hub clients pointed at them with caches in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TINY_MODEL, serve, stop
from tests.hub.standins import Hub
from thinkserve.hub.huggingface import HuggingFace
from thinkserve.hub.modelscope import ModelScope

TINY = "tiny-qwen3.gguf"


def tiny_bytes() -> bytes:
    return TINY_MODEL.read_bytes()


def split_files() -> dict[str, bytes]:
    """The tiny model cut in three ``-0000i-of-00003`` parts (bytes only: the tests check the pull)."""
    data = tiny_bytes()
    third = len(data) // 3 + 1
    return {
        f"split/tiny-qwen3-Q8_0-{i + 1:05d}-of-00003.gguf": data[i * third : (i + 1) * third]
        for i in range(3)
    }


class Running:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        live, self._running = serve(hub.app())
        self.url = live.base_url
        hub.port = int(self.url.rsplit(":", 1)[1])
        self.stopped = False

    def stop(self) -> None:
        if not self.stopped:
            stop(self._running)
            self.stopped = True


@pytest.fixture(params=["hf", "modelscope"])
def standin(request: pytest.FixtureRequest) -> Iterator[Running]:
    hub = Hub(request.param, {TINY: tiny_bytes(), **split_files()})
    running = Running(hub)
    try:
        yield running
    finally:
        running.stop()


def client_for(running: Running, cache: Path) -> HuggingFace | ModelScope:
    if running.hub.kind == "hf":
        return HuggingFace(endpoint=running.url, cache_dir=cache, environ={})
    return ModelScope(endpoint=running.url, cache_dir=cache, environ={})
