"""The official SDKs' seed examples through ``kind = "remote"`` on two engine servers running the
real llama.cpp engine with the tiny Qwen3 model (``token_server``): token for token what the
embedded engine writes, the thinking budget exact over HTTP, ``cached_tokens`` from the upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dashscope
import httpx
import openai
import pytest

from tests.conftest import API_KEY, TINY_MODEL, LiveServer, app_with, serve, stop
from tests.remote.upstreams import Upstream, gateway, remote_engine, upstreams

pytestmark = pytest.mark.slow

Generation: Any = dashscope.Generation
QUESTION = [{"role": "user", "content": "What is 12 plus 7?"}]
SEED = [{"role": "user", "content": "你是誰"}]


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Upstream]]:
    with upstreams([], []) as pair:
        yield pair


@pytest.fixture(scope="module")
def remote(servers: list[Upstream]) -> Iterator[LiveServer]:
    with gateway([s.url for s in servers]) as live:
        yield live


@pytest.fixture(scope="module")
def local() -> Iterator[LiveServer]:
    """The same model in the gateway's own process: what the remote one must write too."""
    from thinkserve.engine.llamacpp.engine import LlamaCppEngine

    engine = LlamaCppEngine(str(TINY_MODEL), n_ctx=4096, n_seq=4)
    engine.start()
    live, running = serve(app_with(engine))
    try:
        yield live
    finally:
        stop(running)
        engine.close()


def run(live: LiveServer, **kwargs: Any) -> tuple[str, str, Any, str | None]:
    """The seed's streaming loop with the OpenAI SDK: reasoning, answer, usage, finish reason."""
    kwargs.setdefault("temperature", 0)
    client = openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
    chunks = list(
        client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)
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


def test_seed_thinking_stream(remote: LiveServer) -> None:
    reasoning, answer, usage, finish = run(
        remote, model="qwen-plus", messages=SEED, extra_body={"enable_thinking": True}
    )
    assert reasoning.strip() and answer.strip() and finish == "stop"
    assert "<think>" not in reasoning + answer and "</think>" not in reasoning + answer
    assert 0 < usage.completion_tokens_details.reasoning_tokens < usage.completion_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "qwen-plus", "messages": SEED, "extra_body": {"enable_thinking": True}},
        {"model": "qwen3-8b", "messages": QUESTION, "extra_body": {"thinking_budget": 5}},
        {"model": "qwen-plus", "messages": QUESTION},
        {"model": "qwen3-8b", "messages": QUESTION, "max_tokens": 7},
        {"model": "qwen3-8b", "messages": QUESTION, "temperature": 0.6, "seed": 7},
    ],
    ids=["thinking", "budget", "no-thinking", "max-tokens", "sampled"],
)
def test_token_for_token_what_the_embedded_engine_writes(
    remote: LiveServer, local: LiveServer, kwargs: dict[str, Any]
) -> None:
    here = run(local, **kwargs)
    there = run(remote, **kwargs)
    assert there[:2] == here[:2] and there[3] == here[3]
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert getattr(there[2], field) == getattr(here[2], field)
    assert (
        there[2].completion_tokens_details.reasoning_tokens
        == here[2].completion_tokens_details.reasoning_tokens
    )


def test_budget_50_is_exact(remote: LiveServer) -> None:
    full, _, full_usage, _ = run(remote, model="qwen3-8b", messages=LONG_THOUGHT)
    assert full_usage.completion_tokens_details.reasoning_tokens > 50, "pick a question it thinks longer on"
    reasoning, answer, usage, finish = run(
        remote, model="qwen3-8b", messages=LONG_THOUGHT, extra_body={"thinking_budget": 50}
    )
    assert usage.completion_tokens_details.reasoning_tokens == 50
    assert full.startswith(reasoning.strip())
    assert "Considering the limited time" not in reasoning + answer
    assert answer.strip() and finish == "stop"


LONG_THOUGHT = [{"role": "user", "content": "Explain step by step how to compute 1234 times 5678."}]


def test_dashscope_seed_stream_and_budget(remote: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", remote.dashscope_base)
    completion = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=LONG_THOUGHT,
        result_format="message",
        enable_thinking=True,
        thinking_budget=50,
        stream=True,
        incremental_output=True,
    )
    reasoning = answer = ""
    chunk: Any = None
    for chunk in completion:
        message = chunk.output.choices[0].message
        reasoning += message.reasoning_content or ""
        answer += message.content or ""
    assert chunk.status_code == 200 and chunk.output.choices[0].finish_reason == "stop"
    assert reasoning and answer
    assert chunk.usage["output_tokens_details"]["reasoning_tokens"] == 50


def test_the_next_turn_goes_where_its_cache_is(remote: LiveServer) -> None:
    engine = remote_engine(remote)
    system = {"role": "system", "content": "You are a calculator. " * 20}
    messages: list[dict[str, str]] = [system, *QUESTION]
    before = [sum(u.counters.requests.values()) for u in engine.pool.upstreams]
    _, answer, first, _ = run(remote, model="qwen-plus", messages=messages)
    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And 3 plus 4?"}]
    _, _, second, _ = run(remote, model="qwen-plus", messages=messages)
    after = [sum(u.counters.requests.values()) for u in engine.pool.upstreams]
    assert sorted(a - b for a, b in zip(after, before, strict=True)) == [0, 2]  # both on one upstream
    assert second.prompt_tokens_details.cached_tokens >= first.prompt_tokens // 2


def test_upstream_metrics(remote: LiveServer) -> None:
    run(remote, model="qwen-plus", messages=QUESTION)
    text = httpx.get(f"{remote.base_url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).text
    for upstream in remote_engine(remote).pool.upstreams:
        assert f'thinkserve_upstream_up{{engine="default",upstream="{upstream.url}"}} 1.0' in text
    assert "thinkserve_upstream_requests_total" in text
    assert "thinkserve_upstream_first_token_seconds_bucket" in text
    assert 'thinkserve_engine_up{engine="default"} 1.0' in text


def test_llamacpp_server_protocol_detected_and_the_budget_exact() -> None:
    with upstreams(["--protocol", "llamacpp"]) as (server,), gateway([server.url]) as live:
        upstream = remote_engine(live).pool.upstreams[0]
        assert upstream.wire is not None and upstream.wire.name == "llamacpp"
        _, answer, usage, finish = run(
            live, model="qwen3-8b", messages=LONG_THOUGHT, extra_body={"thinking_budget": 50}
        )
        assert usage.completion_tokens_details.reasoning_tokens == 50 and answer.strip() and finish == "stop"
        # The next turn starts with the first one's prompt, which the server's slot still holds (a
        # long system prompt: the engine reuses a slot only for at least half of what it caches).
        system = {"role": "system", "content": "You are a careful calculator. " * 30}
        first = [system, *LONG_THOUGHT]
        _, answer, usage, _ = run(live, model="qwen3-8b", messages=first, extra_body={"thinking_budget": 50})
        turn = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "Why?"}]
        _, _, again, _ = run(live, model="qwen3-8b", messages=turn)
        assert again.prompt_tokens_details.cached_tokens >= usage.prompt_tokens // 2  # timings.cache_n
