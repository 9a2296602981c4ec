"""Shared pieces of the DashScope-native tests: the engines they run over and an SSE block reader.

Every check is written against a ``Target``: a live server plus, for a scripted engine, the exact
texts it will produce. Checks that need exact texts look at ``target.script`` and fall back to
structural checks when it is None, so a real engine can be added to ``ENGINES`` unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest

from tests.conftest import TINY_MODEL, LiveServer, app_with, serve, stop
from thinkserve.engine.fake.engine import FakeEngine

ENGINES = ["fake", pytest.param("tiny", marks=pytest.mark.slow)]
"""Engines the DashScope tests run over: the scripted one, and llama.cpp with the tiny Qwen3 model."""

GENERATION = "/api/v1/services/aigc/text-generation/generation"


@dataclass(frozen=True)
class Script:
    """What a scripted engine answers: reasoning then answer, one token per character."""

    reasoning: str
    answer: str


@dataclass(frozen=True)
class Target:
    live: LiveServer
    script: Script | None
    """Exact texts for a scripted engine; None for a real model."""

    @property
    def url(self) -> str:
        return self.live.base_url + GENERATION


@contextlib.contextmanager
def serve_target(engine: str) -> Iterator[Target]:
    if engine == "tiny":
        from thinkserve.engine.llamacpp.engine import LlamaCppEngine

        real = LlamaCppEngine(str(TINY_MODEL), n_ctx=4096, n_seq=4)
        real.start()
        live, running = serve(app_with(real))
        try:
            yield Target(live, None)
        finally:
            stop(running)
            real.close()
        return
    if engine != "fake":
        raise ValueError(f"no such test engine: {engine}")
    fake = FakeEngine()
    live, running = serve(app_with(fake))
    try:
        yield Target(live, Script(fake.reasoning, fake.answer))
    finally:
        stop(running)


@dataclass(frozen=True)
class Block:
    """One SSE block as Model Studio frames it: ``id:N``/``event:X``/``:HTTP_STATUS/S``/``data:{...}``."""

    id: int
    event: str
    status: int
    data: dict[str, object]
    raw: bytes


def parse_blocks(body: bytes) -> list[Block]:
    """Split a native SSE body into blocks, asserting the exact framing of each one."""
    assert body.endswith(b"\n\n"), body[-200:]
    blocks: list[Block] = []
    for raw in body[:-2].split(b"\n\n"):
        lines = raw.split(b"\n")
        assert len(lines) == 4, raw
        id_line, event_line, status_line, data_line = lines
        assert id_line.startswith(b"id:") and event_line.startswith(b"event:"), raw
        assert status_line.startswith(b":HTTP_STATUS/") and data_line.startswith(b"data:"), raw
        data = orjson.loads(data_line[5:])
        # Compact JSON, exactly as serialized (no spaces, key order kept).
        assert orjson.dumps(data) == data_line[5:], data_line
        blocks.append(
            Block(int(id_line[3:]), event_line[6:].decode(), int(status_line[13:]), data, raw + b"\n\n")
        )
    return blocks


def texts(blocks: list[Block]) -> tuple[str, str]:
    """(reasoning, answer) of an incremental ``message`` stream."""
    reasoning = answer = ""
    for block in blocks:
        output = block.data["output"]
        assert isinstance(output, dict)
        message = output["choices"][0]["message"]
        reasoning += message["reasoning_content"]
        answer += message["content"]
    return reasoning, answer
