"""Thinking rules over the OpenAI-compatible API (scripted engine): switches, budget, defaults."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import API_KEY, LiveServer
from thinkserve.engine.fake.engine import FakeEngine


def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)


def stream(live: LiveServer, **kwargs: Any) -> tuple[str, str, Any, list[Any]]:
    chunks = list(
        client(live).chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    )
    reasoning = "".join(
        c.choices[0].delta.reasoning_content or ""
        for c in chunks
        if c.choices and hasattr(c.choices[0].delta, "reasoning_content")
    )
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return reasoning, answer, chunks[-1].usage, chunks


USER = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("model", "extra", "thinks"),
    [
        ("qwen-plus", {}, False),  # commercial hybrid: off by default
        ("qwen-plus", {"enable_thinking": True}, True),
        ("qwen3-8b", {}, True),  # open-source hybrid: on by default
        ("qwen3-8b", {"enable_thinking": False}, False),
        ("qwq-plus", {}, True),  # thinking only
        ("deepseek-v3.1", {}, False),
    ],
)
def test_defaults_and_switch(
    fake_server: LiveServer, model: str, extra: dict[str, Any], thinks: bool
) -> None:
    reasoning, answer, usage, chunks = stream(fake_server, model=model, messages=USER, extra_body=extra)
    assert answer == "Hello! I am a helpful assistant."
    assert bool(reasoning) is thinks
    assert (usage.completion_tokens_details.reasoning_tokens > 0) is thinks
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert hasattr(first, "reasoning_content") is thinks


def test_thinking_only_model_refuses_enable_thinking_false(fake_server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stream(fake_server, model="qwq-plus", messages=USER, extra_body={"enable_thinking": False})
    assert info.value.status_code == 400
    assert info.value.code == "invalid_parameter_error"
    assert "The value of the enable_thinking parameter is restricted to True." in str(info.value)


@pytest.mark.parametrize(
    ("messages", "thinks"),
    [
        ([{"role": "user", "content": "hi /no_think"}], False),
        (
            [
                {"role": "user", "content": "a /no_think"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "b /think"},
            ],
            True,
        ),
        (
            [
                {"role": "user", "content": "a /think"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "b /no_think"},
            ],
            False,
        ),
    ],
)
def test_soft_switch_latest_wins_even_over_enable_thinking(
    fake_server: LiveServer, messages: list[dict[str, str]], thinks: bool
) -> None:
    reasoning, _, _, _ = stream(
        fake_server, model="qwen3-32b", messages=messages, extra_body={"enable_thinking": True}
    )
    assert bool(reasoning) is thinks


def test_soft_switch_ignored_by_models_that_do_not_honour_it(fake_server: LiveServer) -> None:
    reasoning, _, _, _ = stream(
        fake_server,
        model="qwen-plus",
        messages=[{"role": "user", "content": "hi /no_think"}],
        extra_body={"enable_thinking": True},
    )
    assert reasoning


def test_thinking_budget_cuts_reasoning_and_the_answer_follows(
    fake_server: LiveServer, fake_engine: FakeEngine
) -> None:
    reasoning, answer, usage, _ = stream(
        fake_server, model="qwen3-8b", messages=USER, extra_body={"thinking_budget": 10}
    )
    assert usage.completion_tokens_details.reasoning_tokens == 10
    assert reasoning == "The user"  # "\n" + "The user " = 10 tokens; edge whitespace is not shown
    assert "Considering" not in reasoning + answer  # the injected phrase is not shown
    assert answer == "Hello! I am a helpful assistant."
    assert fake_engine.stats.resumed == 1


@pytest.mark.parametrize("budget", [0, -1, 38913])
def test_thinking_budget_range(fake_server: LiveServer, budget: int) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stream(fake_server, model="qwen3-8b", messages=USER, extra_body={"thinking_budget": budget})
    assert "The thinking_budget parameter must be a positive integer and not greater than 38912" in str(
        info.value
    )


def test_max_tokens_cut_inside_thinking_is_all_reasoning(fake_server: LiveServer) -> None:
    reasoning, answer, usage, chunks = stream(fake_server, model="qwen3-8b", messages=USER, max_tokens=6)
    assert answer == ""
    assert reasoning == "The"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert usage.completion_tokens == 6


def test_non_streaming_returns_reasoning_content(fake_server: LiveServer) -> None:
    completion = client(fake_server).chat.completions.create(
        model="qwen-plus", messages=USER, extra_body={"enable_thinking": True}
    )
    message = completion.choices[0].message
    assert message.content == "Hello! I am a helpful assistant."
    assert message.reasoning_content == "The user asks something simple. I will answer briefly."  # type: ignore[attr-defined]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens > 0


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("qwq-plus", "This model only support stream mode, please enable the stream parameter"),
        ("qwen3-8b", "parameter.enable_thinking must be set to false for non-streaming calls"),
    ],
)
def test_non_streaming_refused_where_model_studio_refuses(
    fake_server: LiveServer, model: str, message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(fake_server).chat.completions.create(model=model, messages=USER)
    assert message in str(info.value)


def test_non_streaming_allowed_with_thinking_off(fake_server: LiveServer) -> None:
    completion = client(fake_server).chat.completions.create(
        model="qwen3-8b", messages=USER, extra_body={"enable_thinking": False}
    )
    assert completion.choices[0].message.content == "Hello! I am a helpful assistant."


def test_history_reasoning_and_second_turn_cache(fake_server: LiveServer) -> None:
    messages: list[dict[str, str]] = [{"role": "user", "content": "hello"}]
    _, answer, first, _ = stream(fake_server, model="qwen3-8b", messages=messages)
    messages += [
        {"role": "assistant", "content": answer, "reasoning_content": "earlier thoughts"},
        {"role": "user", "content": "and then?"},
    ]
    _, _, second, _ = stream(fake_server, model="qwen3-8b", messages=messages)
    assert first.prompt_tokens_details.cached_tokens == 0
    assert second.prompt_tokens_details.cached_tokens > 0


def test_stop_strings_cut_the_answer(fake_server: LiveServer) -> None:
    _, answer, _, chunks = stream(fake_server, model="qwen3-8b", messages=USER, stop=["helpful"])
    assert answer == "Hello! I am a "
    assert chunks[-2].choices[0].finish_reason == "stop"
