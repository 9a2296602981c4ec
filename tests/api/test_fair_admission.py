"""One key's burst cannot starve another key's request: places in the engine go to keys in turn."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from collections.abc import Sequence as Seq

import httpx
import pytest

from tests.conftest import LiveServer, serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine, FakeSequence
from thinkserve.engine.protocol import EngineEvent, EngineRequest
from thinkserve.platform.static_keys import StaticKeys
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

KEY_A, KEY_B = "sk-flooder", "sk-single"
PATH = "/compatible-mode/v1/chat/completions"
PLACES = 2
FLOOD = 10


class HeldSequence:
    """A fake sequence that yields nothing until the test lets go."""

    def __init__(self, inner: FakeSequence, hold: threading.Event) -> None:
        self._inner = inner
        self._hold = hold

    def cancel(self) -> None:
        self._inner.cancel()

    async def settle(self, limit_s: float) -> Seq[EngineEvent]:
        return await self._inner.settle(limit_s)

    def resume(self, tokens: Seq[int]) -> None:
        self._inner.resume(tokens)

    async def __aiter__(self) -> AsyncIterator[EngineEvent]:
        await asyncio.to_thread(self._hold.wait)
        async for event in self._inner:
            yield event


class OrderedEngine(FakeEngine):
    """The fake engine, noting whose sequence was submitted when; sequences are held until
    ``hold`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.hold = threading.Event()

    def submit(self, request: EngineRequest) -> HeldSequence:  # type: ignore[override]
        text = self.tokenizer.decode(request.prompt)
        self.order.append("b" if "single" in text else "a")
        return HeldSequence(super().submit(request), self.hold)


@pytest.fixture
def engine() -> OrderedEngine:
    return OrderedEngine()


@pytest.fixture
def live(engine: OrderedEngine) -> Iterator[LiveServer]:
    settings = Settings(api_keys=(KEY_A, KEY_B))
    runtimes = {"default": Runtime(engine, ChatFormat(engine.tokenizer), places=PLACES)}
    server, running = serve(create_app(settings, runtimes=runtimes, gate=StaticKeys(settings.api_keys)))
    try:
        yield server
    finally:
        engine.hold.set()
        stop(running)


async def _until(check: object, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.anyio
async def test_a_flooding_key_does_not_starve_another(live: LiveServer, engine: OrderedEngine) -> None:
    flow = live.app.state.thinkserve.flow

    def waiting() -> int:
        # A server without a line in front of the engine has nobody waiting.
        return int(getattr(flow, "waiting", lambda _: 0)("default"))

    def body(text: str) -> dict[str, object]:
        return {
            "model": "qwen3-8b",
            "messages": [{"role": "user", "content": text}],
            "enable_thinking": False,
        }

    limits = httpx.Limits(max_connections=FLOOD + 1)
    async with httpx.AsyncClient(base_url=live.base_url, timeout=60, limits=limits) as client:
        flood = [
            asyncio.create_task(
                client.post(PATH, json=body(f"flood {i}"), headers={"authorization": f"Bearer {KEY_A}"})
            )
            for i in range(FLOOD)
        ]
        # Every one of key A's requests is in the engine or waiting for it before key B asks.
        assert await _until(lambda: engine.stats.submitted + waiting() == FLOOD)
        single_task = asyncio.create_task(
            client.post(PATH, json=body("single"), headers={"authorization": f"Bearer {KEY_B}"})
        )
        # B waits in line behind A's, or (with no line) went straight to the engine.
        assert await _until(lambda: waiting() == FLOOD - PLACES + 1 or "b" in engine.order)
        engine.hold.set()
        single = await single_task
        replies = await asyncio.gather(*flood)
    assert single.status_code == 200, single.text
    assert all(r.status_code == 200 for r in replies)
    # Keys take turns: A (first in turn) got the first place that freed, B the second, ahead of
    # the 7 of A's still waiting.
    assert engine.order.index("b") == PLACES + 1
    assert engine.order.count("a") == FLOOD
