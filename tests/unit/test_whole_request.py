"""Which engine requests may be sampled whole (``EngineRequest.whole``): a non-streaming request
that nothing but the engine ends, so that no token is ever needed before the last."""

from __future__ import annotations

from dataclasses import replace

from thinkserve.catalogue.spec import load_catalogue
from thinkserve.core.types import ChatRequest, Message, ToolSpec
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.service.generation import GenerationService, Runtime
from thinkserve.thinking.chat_format import ChatFormat

ENGINE = FakeEngine()
SERVICE = GenerationService(load_catalogue(), {"default": Runtime(ENGINE, ChatFormat(ENGINE.tokenizer))})
REQUEST = ChatRequest(model="qwen-plus", messages=(Message("user", "hi"),), stream=False)


def test_only_a_non_streaming_request_that_no_stage_ends_is_whole() -> None:
    assert SERVICE.prepare(REQUEST).engine_request.whole
    assert not SERVICE.prepare(replace(REQUEST, stream=True)).engine_request.whole
    # Stop strings and tool calls end the generation early: the engine must stream for them.
    assert not SERVICE.prepare(replace(REQUEST, stop=("STOP",))).engine_request.whole
    assert SERVICE.prepare(replace(REQUEST, stop=("",))).engine_request.whole
    tools = (ToolSpec("f", "x", "{}"),)
    assert not SERVICE.prepare(replace(REQUEST, tools=tools)).engine_request.whole
