"""The converter's decisions, without a server: output shape defaults and block bytes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from thinkserve.api.dashscope import convert
from thinkserve.catalogue.spec import load_catalogue
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import Usage
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.service.generation import GenerationService, Runtime
from thinkserve.thinking.chat_format import ChatFormat

_ENGINE = FakeEngine()
SERVICE = GenerationService(load_catalogue(), {"default": Runtime(_ENGINE, ChatFormat(_ENGINE.tokenizer))})


def shape_of(model: str, *, sse: bool = True, prompt: str = "hi", **parameters: Any) -> convert.Shape:
    body = {"model": model, "input": {"prompt": prompt}, "parameters": parameters}
    parsed = convert.parse_request(orjson.dumps(body), sse=sse)
    return convert.shape(parsed, SERVICE.prepare(parsed.chat))


@pytest.mark.parametrize(
    ("model", "parameters", "message", "incremental"),
    [
        # Commercial hybrid, thinking off: Model Studio's defaults, text and whole-text-so-far.
        ("qwen-plus", {}, False, False),
        ("qwen-plus", {"result_format": "message", "incremental_output": True}, True, True),
        # Thinking: message and deltas, whatever was asked for the format.
        ("qwen-plus", {"enable_thinking": True}, True, True),
        ("qwen-plus", {"enable_thinking": True, "result_format": "text"}, True, True),
        # Models that think by default answer as message, incrementally, even with thinking off.
        ("qwq-plus", {}, True, True),
        ("qwen3-8b", {"enable_thinking": False}, True, True),
        ("qwen3-8b", {"enable_thinking": False, "incremental_output": False}, True, False),
    ],
)
def test_shape_defaults(model: str, parameters: dict[str, Any], message: bool, incremental: bool) -> None:
    assert shape_of(model, **parameters) == convert.Shape(message=message, incremental=incremental)


@pytest.mark.parametrize(
    ("model", "prompt", "parameters"),
    [
        ("qwen-plus", "hi", {"enable_thinking": True, "incremental_output": False}),
        ("qwq-plus", "hi", {"incremental_output": False}),
        # Asked for, then switched off by /no_think in the prompt: still the parameter's rule.
        ("qwen3-8b", "hi /no_think", {"enable_thinking": True, "incremental_output": False}),
    ],
)
def test_incremental_false_refused_with_thinking(model: str, prompt: str, parameters: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameter, match=convert.INCREMENTAL_WITH_THINKING):
        shape_of(model, prompt=prompt, **parameters)


def test_incremental_false_is_fine_without_a_stream() -> None:
    shape = shape_of("qwen-plus", sse=False, enable_thinking=True, incremental_output=False)
    assert shape.message


def test_cumulative_blocks_carry_the_whole_text() -> None:
    writer = convert.BlockWriter("rid", convert.Shape(message=True, incremental=False))
    usage = Usage(prompt_tokens=3, completion_tokens=2)
    writer.answer("Hel", usage)
    block = writer.answer("lo", usage)
    assert block == (
        b"id:2\nevent:result\n:HTTP_STATUS/200\n"
        b'data:{"output":{"choices":[{"message":{"content":"Hello","reasoning_content":"","role":"assistant"},'
        b'"finish_reason":"null"}]},"usage":{"total_tokens":5,"input_tokens":3,"output_tokens":2,'
        b'"output_tokens_details":{"reasoning_tokens":0},"prompt_tokens_details":{"cached_tokens":0}},'
        b'"request_id":"rid"}\n\n'
    )
    last = writer.finish("length", usage)
    assert b'"content":"Hello"' in last and b'"finish_reason":"length"' in last and last.startswith(b"id:3\n")


def test_text_shape_writes_no_reasoning_block_and_escapes_text() -> None:
    writer = convert.BlockWriter("rid", convert.Shape(message=False, incremental=True))
    assert writer.reasoning("hidden", Usage()) == b""
    block = writer.answer('a "quoted"\nline', Usage())
    assert block.startswith(b"id:1\n")
    assert b'data:{"output":{"text":"a \\"quoted\\"\\nline","finish_reason":"null"}' in block


def test_stream_usage_matches_the_body_usage() -> None:
    usage = Usage(prompt_tokens=11, cached_tokens=4, completion_tokens=40, reasoning_tokens=25)
    writer = convert.BlockWriter("rid", convert.Shape(message=True, incremental=True))
    data = orjson.loads(writer.finish("stop", usage).split(b"data:", 1)[1])
    assert data["usage"] == convert.usage_body(usage)
    assert list(data["usage"]) == list(convert.usage_body(usage))
