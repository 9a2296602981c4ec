"""The model calls the built-in ``search`` tool itself (``service.rounds``), through the official
SDKs on the scripted engine: it reasons, calls ``search`` with the question, reads the results and
answers. The client sees one response: no tool call, the reasoning of both rounds,
``search_info`` and ``usage.plugins``; both dialects, streamed and not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dashscope
import pytest
from dashscope import Generation as _Generation
from openai import OpenAI

from tests.conftest import API_KEY, app_with, free_port, serve, stop
from tests.search.conftest import CITED_ANSWER, SearchServer
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.engine.fake.tokenizer import FakeTokenizer
from thinkserve.search.calls import MAX_SEARCHES
from thinkserve.search.settings import SearchSettings
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

Generation: Any = _Generation

QUESTION = [{"role": "user", "content": "How often does the flamingo procedure rotate keys?"}]
SOURCES = {"enable_source": True}
CITED = {**SOURCES, "enable_citation": True, "citation_format": "[ref_<number>]"}
REWRITTEN = "The flamingo procedure rotates keys [ref_1], weekly [ref_1]; see also [9]."
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def _openai(server: SearchServer) -> OpenAI:
    return OpenAI(api_key=API_KEY, base_url=server.live.openai_base, max_retries=0)


def _prompts(server: SearchServer) -> list[str]:
    tok = server.engine.tokenizer
    return [tok.decode(p) for p in server.engine.stats.prompts]


def _check_results(results: list[dict[str, Any]], searches: int = 1) -> None:
    assert [r["index"] for r in results] == list(range(1, 2 * searches + 1))
    assert [r["title"] for r in results] == ["Rotating keys", "Search billing"] * searches


def _check_rounds(server: SearchServer) -> None:
    """The engine saw two prompts: the question with the search tool offered, then the same
    conversation continued with the model's call and the numbered results."""
    first, second = _prompts(server)[-2:]
    assert '"name": "search"' in first and "<tool_response>" not in first
    assert second.startswith(first)
    call = '<tool_call>\n{"name": "search", "arguments": {"query": "How often does the flamingo'
    assert call in second
    assert "<tool_response>\n[1] Rotating keys\nURL: file://" in second


def test_openai_non_stream_runs_the_loop(search_server: SearchServer) -> None:
    completion = _openai(search_server).chat.completions.create(
        model="qwen-plus",
        messages=QUESTION,
        extra_body={"enable_thinking": True, "enable_search": True, "search_options": CITED},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    reasoning = search_server.engine.reasoning
    assert choice.message.reasoning_content == f"{reasoning}\n\n{reasoning}"  # type: ignore[attr-defined]
    assert choice.message.content == REWRITTEN
    _check_results((completion.model_extra or {})["search_info"]["search_results"])
    assert completion.usage is not None
    assert (completion.usage.model_extra or {})["plugins"] == {"search": {"count": 1, "strategy": "turbo"}}
    _check_rounds(search_server)
    # The model was told how to cite, in the asked format.
    assert "cite it as [ref_1]" in _prompts(search_server)[-1]


def test_openai_stream_runs_the_loop_and_adds_usage_up(search_server: SearchServer) -> None:
    chunks = list(
        _openai(search_server).chat.completions.create(
            model="qwen-plus",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"enable_thinking": True, "enable_search": True, "search_options": SOURCES},
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert all(d.tool_calls is None for d in deltas)
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    engine = search_server.engine
    assert reasoning == f"{engine.reasoning}\n\n{engine.reasoning}"
    assert "".join(d.content or "" for d in deltas) == CITED_ANSWER  # no enable_citation: as written
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    infos = [(c.model_extra or {})["search_info"] for c in chunks if (c.model_extra or {}).get("search_info")]
    assert len(infos) == 1
    _check_results(infos[0]["search_results"])
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.model_extra or {})["plugins"] == {"search": {"count": 1, "strategy": "turbo"}}
    # Each round is a model call: its prompt counts; the second reused the first's prefix.
    first, second = engine.stats.prompts[-2:]
    assert usage.prompt_tokens == len(first) + len(second)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens >= len(first) - 1
    assert usage.completion_tokens == engine.stats.sampled_tokens
    assert usage.completion_tokens_details is not None
    # Each round's reasoning: the text between the think tags, its newlines included.
    assert usage.completion_tokens_details.reasoning_tokens == 2 * len(f"\n{engine.reasoning}\n")
    _check_rounds(search_server)


def test_several_searches_are_numbered_across_and_bounded(search_server: SearchServer) -> None:
    search_server.engine.tool_rounds = 10  # a model that would search forever
    completion = _openai(search_server).chat.completions.create(
        model="qwen-plus", messages=QUESTION, extra_body={"enable_search": True, "search_options": SOURCES}
    )
    assert completion.choices[0].message.content == CITED_ANSWER
    assert completion.choices[0].finish_reason == "stop"
    _check_results((completion.model_extra or {})["search_info"]["search_results"], MAX_SEARCHES)
    assert completion.usage is not None
    plugins = (completion.usage.model_extra or {})["plugins"]
    assert plugins == {"search": {"count": MAX_SEARCHES, "strategy": "turbo"}}
    prompts = _prompts(search_server)[-(MAX_SEARCHES + 1) :]
    # The second search's results are numbered after the first's; the last round is offered no tool.
    assert "<tool_response>\n[3] Rotating keys" in prompts[2]
    assert all("<tools>" in p for p in prompts[:-1])
    assert "<tools>" not in prompts[-1]


def test_caller_tools_stay_the_callers(search_server: SearchServer) -> None:
    client = _openai(search_server)
    weather = [{"role": "user", "content": "What is the weather like in Hangzhou?"}]
    completion = client.chat.completions.create(
        model="qwen-plus",
        messages=weather,
        tools=[WEATHER],  # type: ignore[list-item]
        extra_body={"enable_search": True},
    )
    calls = completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "tool_calls"
    assert calls is not None and calls[0].function.name == "get_current_weather"
    assert completion.usage is not None and "plugins" not in (completion.usage.model_extra or {})
    prompt = _prompts(search_server)[-1]
    assert '"name": "get_current_weather"' in prompt and '"name": "search"' in prompt
    # tool_choice "none" hides the caller's tools, not the search the request enabled.
    completion = client.chat.completions.create(
        model="qwen-plus",
        messages=QUESTION,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
        extra_body={"enable_search": True},
    )
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == CITED_ANSWER
    first = _prompts(search_server)[-2]
    assert '"name": "search"' in first and "get_current_weather" not in first


def test_forced_search_still_runs_before_generation(search_server: SearchServer) -> None:
    completion = _openai(search_server).chat.completions.create(
        model="qwen-plus",
        messages=QUESTION,
        extra_body={"enable_search": True, "search_options": {**SOURCES, "forced_search": True}},
    )
    assert completion.choices[0].message.content == CITED_ANSWER
    prompt = search_server.prompt_text()
    assert "# Search results" in prompt and "<tools>" not in prompt
    assert search_server.engine.stats.submitted == 1


@pytest.fixture
def native(search_server: SearchServer, monkeypatch: pytest.MonkeyPatch) -> SearchServer:
    monkeypatch.setattr(dashscope, "base_http_api_url", search_server.live.dashscope_base)
    return search_server


def test_dashscope_non_stream_runs_the_loop(native: SearchServer) -> None:
    response = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=QUESTION,
        result_format="message",
        enable_thinking=True,
        enable_search=True,
        search_options=CITED,
    )
    assert response.status_code == 200, response
    message = response.output.choices[0].message
    assert "tool_calls" not in message
    reasoning = native.engine.reasoning
    assert message.reasoning_content == f"{reasoning}\n\n{reasoning}"
    assert message.content == REWRITTEN
    _check_results(response.output.search_info["search_results"])
    assert response.usage.plugins == {"search": {"count": 1, "strategy": "turbo"}}
    _check_rounds(native)


def test_dashscope_stream_runs_the_loop(native: SearchServer) -> None:
    chunks = list(
        Generation.call(
            api_key=API_KEY,
            model="qwen-plus",
            messages=QUESTION,
            result_format="message",
            enable_thinking=True,
            enable_search=True,
            search_options=CITED,
            stream=True,
            incremental_output=True,
        )
    )
    assert all(c.status_code == 200 for c in chunks)
    messages = [c.output.choices[0].message for c in chunks]
    assert all("tool_calls" not in m for m in messages)
    reasoning = native.engine.reasoning
    assert "".join(m.reasoning_content for m in messages) == f"{reasoning}\n\n{reasoning}"
    assert "".join(m.content for m in messages) == REWRITTEN
    # From the search on, every block carries the sources and the count.
    searched = [c for c in chunks if c.output.get("search_info")]
    assert searched and searched[-1] is chunks[-1]
    _check_results(chunks[-1].output.search_info["search_results"])
    assert chunks[-1].usage.plugins == {"search": {"count": 1, "strategy": "turbo"}}
    assert chunks[-1].output.choices[0].finish_reason == "stop"


@pytest.fixture
def unreachable() -> Iterator[tuple[str, FakeEngine]]:
    """A server whose SearXNG is down."""
    engine = FakeEngine(answer="Paris.")
    down = SearchSettings(searxng_url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    live, running = serve(app_with(engine, settings=Settings(api_keys=(API_KEY,), search=down)))
    try:
        yield live.openai_base, engine
    finally:
        stop(running)


def test_a_failed_search_is_told_to_the_model_and_the_answer_goes_on(
    unreachable: tuple[str, FakeEngine],
) -> None:
    base, engine = unreachable
    completion = OpenAI(api_key=API_KEY, base_url=base, max_retries=0).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        extra_body={"enable_search": True, "search_options": SOURCES},
    )
    assert completion.choices[0].message.content == "Paris."
    assert "search_info" not in (completion.model_extra or {})
    assert completion.usage is not None and "plugins" not in (completion.usage.model_extra or {})
    last = engine.tokenizer.decode(engine.stats.prompts[-1])
    assert "<tool_response>\nError: the search is unavailable right now; answer without it." in last


@pytest.fixture
def no_tools_template(docs: Any) -> Iterator[tuple[str, FakeEngine]]:
    """A model file whose template has no place for tools (ChatML)."""
    engine = FakeEngine(answer=CITED_ANSWER)
    settings = Settings(api_keys=(API_KEY,), search=SearchSettings(docs=docs))
    runtime = Runtime(engine, ChatFormat(FakeTokenizer(template=None)))
    live, running = serve(create_app(settings, runtimes={"default": runtime}))
    try:
        yield live.openai_base, engine
    finally:
        stop(running)


def test_a_template_without_tools_searches_before_generation(
    no_tools_template: tuple[str, FakeEngine],
) -> None:
    base, engine = no_tools_template
    completion = OpenAI(api_key=API_KEY, base_url=base, max_retries=0).chat.completions.create(
        model="qwen-plus", messages=QUESTION, extra_body={"enable_search": True, "search_options": SOURCES}
    )
    _check_results((completion.model_extra or {})["search_info"]["search_results"])
    prompt = engine.tokenizer.decode(engine.stats.prompts[-1])
    assert "# Search results" in prompt and "<tools>" not in prompt
    assert engine.stats.submitted == 1
