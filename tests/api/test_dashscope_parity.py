"""The same request through both dialects gives the same texts and the same usage numbers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dashscope
import openai
import pytest
from dashscope import Generation as _Generation

from tests.api.dashscope_helpers import ENGINES, Target, serve_target
from tests.conftest import API_KEY

# Any: both SDKs type messages as their own classes; the wire takes these dicts.
QUESTION: Any = [{"role": "user", "content": "你是誰?"}]
Generation: Any = _Generation


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    with serve_target(request.param) as t:
        monkeypatch.setattr(dashscope, "base_http_api_url", t.live.dashscope_base)
        yield t


def via_openai(target: Target, thinking: bool) -> tuple[str, str, dict[str, int]]:
    client = openai.OpenAI(api_key=API_KEY, base_url=target.live.openai_base, max_retries=0)
    stream = client.chat.completions.create(
        model="qwen-plus",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
        seed=7,
        extra_body={"enable_thinking": thinking},
    )
    reasoning = answer = ""
    usage: Any = None
    for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta: Any = chunk.choices[0].delta
        reasoning += getattr(delta, "reasoning_content", None) or ""
        answer += delta.content or ""
    return (
        reasoning,
        answer,
        {
            "input": usage.prompt_tokens,
            "output": usage.completion_tokens,
            "total": usage.total_tokens,
            "reasoning": usage.completion_tokens_details.reasoning_tokens,
            "cached": usage.prompt_tokens_details.cached_tokens,
        },
    )


def via_dashscope(thinking: bool) -> tuple[str, str, dict[str, int]]:
    reasoning = answer = ""
    chunk: Any = None
    for chunk in Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=QUESTION,
        result_format="message",
        enable_thinking=thinking,
        stream=True,
        incremental_output=True,
        seed=7,
    ):
        assert chunk.status_code == 200, chunk
        reasoning += chunk.output.choices[0].message.reasoning_content
        answer += chunk.output.choices[0].message.content
    usage = chunk.usage
    return (
        reasoning,
        answer,
        {
            "input": usage["input_tokens"],
            "output": usage["output_tokens"],
            "total": usage["total_tokens"],
            "reasoning": usage["output_tokens_details"]["reasoning_tokens"],
            "cached": usage["prompt_tokens_details"]["cached_tokens"],
        },
    )


@pytest.mark.parametrize("thinking", [True, False])
def test_same_request_same_texts_and_usage(target: Target, thinking: bool) -> None:
    # The first call warms the prefix cache, so the two compared calls see the same cache state.
    via_openai(target, thinking)
    native = via_dashscope(thinking)
    compatible = via_openai(target, thinking)
    assert native == compatible
    reasoning, answer, usage = native
    assert answer and bool(reasoning) is thinking
    assert usage["total"] == usage["input"] + usage["output"]
