"""Admission before heavy work: a huge prompt is admitted (or refused) before it is tokenized, and
its tokenizing runs off the event loop, so that other requests go on meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from tests.conftest import API_KEY, LiveServer, serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.core.errors import Arrearage
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.engine.fake.tokenizer import FakeTokenizer
from thinkserve.platform.port import Admission, Principal
from thinkserve.platform.static_keys import StaticKeys
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

BIG = 8_000_000
PATH = "/compatible-mode/v1/chat/completions"
HEADERS = {"authorization": f"Bearer {API_KEY}"}


class SpyTokenizer(FakeTokenizer):
    """The fake tokenizer; a huge text blocks its ``encode`` until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.big_calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.released_in_time: bool | None = None

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        if len(text) < BIG:
            return super().encode(text, special=special)
        self.big_calls += 1
        self.entered.set()
        # On the event loop this would block the loop: nothing else could answer, and the wait
        # would end by its timeout instead of the test's release.
        self.released_in_time = self.release.wait(timeout=10)
        return super().encode(text[:100], special=special)


class BrokeKeys(StaticKeys):
    """Static keys whose every key is over its spending limit."""

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission:
        raise Arrearage()


def _server(tokenizer: SpyTokenizer, gate: StaticKeys) -> tuple[LiveServer, object]:
    settings = Settings(api_keys=(API_KEY,))
    settings = replace(settings, max_body_bytes=BIG + 4096)
    engine = FakeEngine()
    runtimes = {"default": Runtime(engine, ChatFormat(tokenizer))}
    return serve(create_app(settings, runtimes=runtimes, gate=gate))


@pytest.fixture
def spy() -> SpyTokenizer:
    return SpyTokenizer()


@pytest.fixture
def live(spy: SpyTokenizer) -> Iterator[LiveServer]:
    server, running = _server(spy, StaticKeys((API_KEY,)))
    try:
        yield server
    finally:
        spy.release.set()
        stop(running)  # type: ignore[arg-type]


def _body(content: str) -> dict[str, object]:
    return {"model": "qwen3-8b", "messages": [{"role": "user", "content": content}], "enable_thinking": False}


@pytest.mark.anyio
async def test_other_requests_are_served_while_a_huge_prompt_is_tokenized(
    live: LiveServer, spy: SpyTokenizer
) -> None:
    async with (
        httpx.AsyncClient(base_url=live.base_url, timeout=60) as big,
        httpx.AsyncClient(base_url=live.base_url, timeout=60) as small,
    ):
        pending = asyncio.create_task(big.post(PATH, json=_body("x" * BIG), headers=HEADERS))
        assert await asyncio.to_thread(spy.entered.wait, 30), "the huge prompt never reached the tokenizer"
        # The huge prompt is being tokenized (blocked until released): the server still answers.
        health = await small.get("/health")
        reply = await small.post(PATH, json=_body("hi"), headers=HEADERS)
        spy.release.set()
        answered = await pending
    assert health.status_code == 200
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]
    # Both answered while the huge prompt was still in the tokenizer.
    assert spy.released_in_time is True
    assert answered.status_code == 200, answered.text


@pytest.mark.anyio
async def test_arrearage_comes_before_tokenizing(spy: SpyTokenizer) -> None:
    server, running = _server(spy, BrokeKeys((API_KEY,)))
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            response = await client.post(PATH, json=_body("x" * BIG), headers=HEADERS)
    finally:
        spy.release.set()
        stop(running)  # type: ignore[arg-type]
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Arrearage"
    assert spy.big_calls == 0
