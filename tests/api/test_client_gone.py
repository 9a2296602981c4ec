"""A client that goes away before its response starts: the engine sequence is cancelled and its
usage recorded once, as cancelled (non-streaming while collecting; streams before their first
event)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import API_KEY, LiveServer, app_with, serve, stop
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform.static_keys import StaticKeys

PATH = "/compatible-mode/v1/chat/completions"
HEADERS = {"authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def slow() -> FakeEngine:
    # A token every 30 s: no first event, let alone an answer, while a test waits (10 s at most).
    return FakeEngine(delay=30.0)


@pytest.fixture
def gate() -> StaticKeys:
    return StaticKeys((API_KEY,))


@pytest.fixture
def live(slow: FakeEngine, gate: StaticKeys) -> Iterator[LiveServer]:
    server, running = serve(app_with(slow, gate=gate))
    try:
        yield server
    finally:
        stop(running)


async def _until(check: object, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_gone_before_its_response_cancels_the_engine(
    live: LiveServer, slow: FakeEngine, gate: StaticKeys, stream: bool
) -> None:
    body = {
        "model": "qwen3-8b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
        "enable_thinking": False,
    }
    async with httpx.AsyncClient(base_url=live.base_url, timeout=60) as client:

        async def call() -> None:
            async with client.stream("POST", PATH, json=body, headers=HEADERS) as response:
                await response.aread()

        pending = asyncio.create_task(call())
        assert await _until(lambda: slow.stats.active == 1), "the request never reached the engine"
        # No event yet (a token every 30 s): the response has not started. Hang up.
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    assert await _until(lambda: len(gate.records) == 1), "no usage record after the client went away"
    assert await _until(lambda: slow.stats.active == 0)
    assert slow.stats.cancelled == 1
    assert [r.status for r in gate.records] == ["cancelled"]
