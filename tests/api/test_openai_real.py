"""The OpenAI-compatible API on the real llama.cpp engine with the tiny Qwen3 test model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import API_KEY, TINY_MODEL, LiveServer, app_with, serve, stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    if not TINY_MODEL.exists():
        pytest.fail(
            f"{TINY_MODEL} is missing: it is committed; regenerate it with scripts/make_tiny_model.py"
        )
    from thinkserve.engine.llamacpp.engine import LlamaCppEngine

    eng = LlamaCppEngine(str(TINY_MODEL), n_ctx=8192, n_seq=4)
    eng.start()
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="module")
def live(engine: Any) -> Iterator[LiveServer]:
    server, running = serve(app_with(engine))
    try:
        yield server
    finally:
        stop(running)


def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)


def run(live: LiveServer, **kwargs: Any) -> tuple[str, str, Any, str | None]:
    kwargs.setdefault("temperature", 0)
    chunks = list(
        client(live).chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    )
    reasoning = answer = ""
    finish = None
    for c in chunks:
        if not c.choices:
            continue
        delta = c.choices[0].delta
        if getattr(delta, "reasoning_content", None) is not None:
            reasoning += delta.reasoning_content  # type: ignore[attr-defined]
        answer += delta.content or ""
        finish = c.choices[0].finish_reason or finish
    return reasoning, answer, chunks[-1].usage, finish


QUESTION = [{"role": "user", "content": "What is 12 plus 7?"}]


def test_seed_example_thinks_then_answers(live: LiveServer) -> None:
    reasoning, answer, usage, finish = run(
        live,
        model="qwen-plus",
        messages=[{"role": "user", "content": "你是誰"}],
        extra_body={"enable_thinking": True},
    )
    assert reasoning.strip() and answer.strip()
    assert "<think>" not in reasoning + answer and "</think>" not in reasoning + answer
    assert finish == "stop"
    details = usage.completion_tokens_details
    assert 0 < details.reasoning_tokens < usage.completion_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_sampled_defaults_also_think_then_answer(live: LiveServer) -> None:
    reasoning, answer, _, finish = run(live, model="qwen3-8b", messages=QUESTION, temperature=0.6, seed=7)
    assert reasoning.strip() and answer.strip() and finish == "stop"


def test_thinking_off_answers_directly(live: LiveServer) -> None:
    reasoning, answer, usage, _ = run(live, model="qwen-plus", messages=QUESTION)
    assert reasoning == "" and answer.strip()
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_no_think_directive(live: LiveServer) -> None:
    messages = [{"role": "user", "content": "What is 12 plus 7? /no_think"}]
    reasoning, answer, usage, _ = run(live, model="qwen3-8b", messages=messages)
    assert reasoning == "" and answer.strip()
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_budget_cuts_reasoning_exactly_and_the_answer_follows(live: LiveServer) -> None:
    full, _, full_usage, _ = run(live, model="qwen3-8b", messages=QUESTION)
    budget = 5
    assert full_usage.completion_tokens_details.reasoning_tokens > budget
    reasoning, answer, usage, finish = run(
        live, model="qwen3-8b", messages=QUESTION, extra_body={"thinking_budget": budget}
    )
    assert usage.completion_tokens_details.reasoning_tokens == budget
    assert full.startswith(reasoning.strip())
    assert "Considering the limited time" not in reasoning + answer
    assert answer.strip() and finish == "stop"


def test_max_tokens_inside_thinking_is_all_reasoning(live: LiveServer) -> None:
    reasoning, answer, usage, finish = run(live, model="qwen3-8b", messages=QUESTION, max_tokens=4)
    assert answer == "" and finish == "length" and usage.completion_tokens == 4
    assert reasoning.strip()


def test_thinking_only_model_refuses_false(live: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError, match="restricted to True"):
        run(live, model="qwq-32b", messages=QUESTION, extra_body={"enable_thinking": False})


def test_non_streaming_returns_reasoning_content(live: LiveServer) -> None:
    completion = client(live).chat.completions.create(
        model="qwen-plus", messages=QUESTION, extra_body={"enable_thinking": True}, temperature=0
    )
    message = completion.choices[0].message
    assert message.reasoning_content.strip()  # type: ignore[attr-defined]
    assert message.content and message.content.strip()
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens > 0


def test_second_turn_reuses_the_kv_cache(live: LiveServer) -> None:
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a calculator."}, *QUESTION]
    _, answer, first, _ = run(live, model="qwen3-8b", messages=messages)
    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "What is 3 plus 4?"}]
    _, _, second, _ = run(live, model="qwen3-8b", messages=messages)
    assert second.prompt_tokens > first.prompt_tokens
    assert second.prompt_tokens_details.cached_tokens >= first.prompt_tokens // 2
