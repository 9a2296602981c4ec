"""The OpenAI-compatible API with the official SDK, over the scripted engine."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import API_KEY, LiveServer


def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)


def test_seed_example_streams_thinking_answer_usage(fake_server: LiveServer) -> None:
    completion = client(fake_server).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "你是誰"}],
        extra_body={"enable_thinking": True},
        stream=True,
        stream_options={"include_usage": True},
    )
    reasoning = answer = ""
    usage = None
    for chunk in completion:
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        if getattr(delta, "reasoning_content", None) is not None:
            reasoning += delta.reasoning_content  # type: ignore[attr-defined]
        if delta.content:
            answer += delta.content
    assert reasoning == "The user asks something simple. I will answer briefly."
    assert answer == "Hello! I am a helpful assistant."
    assert usage is not None
    assert usage.completion_tokens_details is not None
    # One token per character; the newlines inside the think block count, the tags do not.
    assert usage.completion_tokens_details.reasoning_tokens == len(reasoning) + 2
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_non_streaming_refused_for_stream_only_model(fake_server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(fake_server).chat.completions.create(
            model="qwq-plus", messages=[{"role": "user", "content": "hi"}]
        )
    assert "only support stream mode" in str(info.value)
