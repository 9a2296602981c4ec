"""Smoke tests on the embedded default model (Qwen2.5-Coder-1.5B, prompted thinking)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import API_KEY, LiveServer, app_with, serve, stop
from thinkserve.config import default_data_dir
from thinkserve.default_model import default_model_path

pytestmark = [pytest.mark.slow, pytest.mark.default_model]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    from thinkserve.engine.llamacpp.engine import LlamaCppEngine

    # The same cache `make serve` uses: assembled once, from the installed part packages.
    path = default_model_path(default_data_dir(), show_progress=False)
    engine = LlamaCppEngine(str(path), n_ctx=4096, n_seq=2)
    engine.start()
    server, running = serve(app_with(engine))
    try:
        yield server
    finally:
        stop(running)
        engine.close()


def test_seed_example_prints_thinking_answer_and_usage(live: LiveServer) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
    completion = client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "What is 17 * 23?"}],
        extra_body={"enable_thinking": True, "thinking_budget": 24},
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=64,
        temperature=0,
    )
    reasoning = answer = ""
    usage: Any = None
    for chunk in completion:
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        reasoning += getattr(delta, "reasoning_content", None) or ""
        answer += delta.content or ""
    assert reasoning.strip()
    assert answer.strip()
    assert "<think>" not in answer and "</think>" not in answer
    assert 0 < usage.completion_tokens_details.reasoning_tokens <= 24
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_dashscope_sdk_on_the_default_model(live: LiveServer) -> None:
    import dashscope
    from dashscope import Generation

    old = dashscope.base_http_api_url
    dashscope.base_http_api_url = live.dashscope_base
    try:
        responses = list(
            Generation.call(
                api_key=API_KEY,
                model="qwen-plus",
                messages=[{"role": "user", "content": "Say hello."}],
                result_format="message",
                enable_thinking=False,
                stream=True,
                incremental_output=True,
                max_tokens=16,
                temperature=0,
            )
        )
    finally:
        dashscope.base_http_api_url = old
    assert all(r.status_code == 200 for r in responses)
    text = "".join(r.output.choices[0].message.content for r in responses)
    assert text.strip()
    assert responses[-1].output.choices[0].finish_reason in ("stop", "length")
