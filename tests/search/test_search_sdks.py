"""``enable_search`` through the official SDKs on the fake engine, searching a folder of documents:
both dialects, streamed and not; sources, usage.plugins, citations, prepended sources. Most use
``forced_search`` (the search before generation); ``test_search_loop`` has the model's own calls."""

from __future__ import annotations

from typing import Any

import dashscope
import pytest
from dashscope import Generation as _Generation
from openai import OpenAI

from tests.conftest import API_KEY
from tests.search.conftest import SearchServer

Generation: Any = _Generation

SOURCES = {"forced_search": True, "enable_source": True}
CITED = {**SOURCES, "enable_citation": True, "citation_format": "[ref_<number>]"}
QUESTION = [{"role": "user", "content": "How often does the flamingo procedure rotate keys?"}]


def _openai(server: SearchServer) -> OpenAI:
    return OpenAI(api_key=API_KEY, base_url=server.live.openai_base, max_retries=0)


def _check_results(results: list[dict[str, Any]], server: SearchServer) -> None:
    assert [r["index"] for r in results] == list(range(1, len(results) + 1))
    assert results[0]["title"] == "Rotating keys"
    assert results[0]["url"] == (server.docs / "ops" / "keys.md").resolve().as_uri()
    assert {r["title"] for r in results} == {"Rotating keys", "Search billing"}
    assert all(set(r) == {"index", "title", "url", "site_name", "icon"} for r in results)
    assert all(r["site_name"] == "docs" and r["icon"] == "" for r in results)


def test_openai_non_stream_returns_sources_plugins_and_citations(search_server: SearchServer) -> None:
    completion = _openai(search_server).chat.completions.create(
        model="qwen-plus", messages=QUESTION, extra_body={"enable_search": True, "search_options": CITED}
    )
    extra = completion.model_extra or {}
    _check_results(extra["search_info"]["search_results"], search_server)
    assert completion.usage is not None
    assert (completion.usage.model_extra or {})["plugins"] == {"search": {"count": 1, "strategy": "turbo"}}
    # Markers naming a result take the asked format; [9] names none and stays.
    assert completion.choices[0].message.content == (
        "The flamingo procedure rotates keys [ref_1], weekly [ref_1]; see also [9]."
    )
    prompt = search_server.prompt_text()
    assert "# Search results" in prompt and "The flamingo procedure rotates every API key weekly." in prompt
    assert "cite it as [ref_1]" in prompt


def test_openai_stream_carries_sources_then_usage_plugins(search_server: SearchServer) -> None:
    stream = _openai(search_server).chat.completions.create(
        model="qwen-plus",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"enable_search": True, "search_options": {**SOURCES, "search_strategy": "max"}},
    )
    chunks = list(stream)
    with_info = [c for c in chunks if (c.model_extra or {}).get("search_info")]
    assert len(with_info) == 1
    _check_results((with_info[0].model_extra or {})["search_info"]["search_results"], search_server)
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answer == search_server.engine.answer  # no enable_citation: the answer as written
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.model_extra or {})["plugins"] == {"search": {"count": 1, "strategy": "max"}}


def test_openai_without_sources_searches_but_returns_no_search_info(search_server: SearchServer) -> None:
    completion = _openai(search_server).chat.completions.create(
        model="qwen-plus", messages=QUESTION, extra_body={"enable_search": True}
    )
    assert "search_info" not in (completion.model_extra or {})
    assert completion.usage is not None
    assert (completion.usage.model_extra or {})["plugins"]["search"]["count"] == 1
    # The model called the search itself: the results came back as the tool's result.
    prompt = search_server.prompt_text()
    assert "<tool_response>\n[1] Rotating keys" in prompt
    assert "The flamingo procedure rotates every API key weekly." in prompt


def test_a_search_the_model_called_counts_without_hits(search_server: SearchServer) -> None:
    completion = _openai(search_server).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "Tell me about quasars."}],
        extra_body={"enable_search": True, "search_options": {"enable_source": True}},
    )
    assert (completion.model_extra or {})["search_info"] == {"search_results": []}
    assert completion.usage is not None
    assert (completion.usage.model_extra or {})["plugins"]["search"]["count"] == 1
    assert "<tool_response>\nNo results.\n</tool_response>" in search_server.prompt_text()


def test_forced_search_without_hits_still_counts(search_server: SearchServer) -> None:
    completion = _openai(search_server).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "Tell me about quasars."}],
        extra_body={"enable_search": True, "search_options": SOURCES},
    )
    assert (completion.model_extra or {})["search_info"] == {"search_results": []}
    assert completion.usage is not None
    assert (completion.usage.model_extra or {})["plugins"]["search"]["count"] == 1
    assert "The search found nothing" in search_server.prompt_text()


@pytest.fixture
def native(search_server: SearchServer, monkeypatch: pytest.MonkeyPatch) -> SearchServer:
    monkeypatch.setattr(dashscope, "base_http_api_url", search_server.live.dashscope_base)
    return search_server


def test_dashscope_non_stream_returns_search_info_and_plugins(native: SearchServer) -> None:
    response = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=QUESTION,
        result_format="message",
        enable_search=True,
        search_options=CITED,
    )
    assert response.status_code == 200, response
    _check_results(response.output.search_info["search_results"], native)
    assert response.usage.plugins == {"search": {"count": 1, "strategy": "turbo"}}
    assert "[ref_1]" in response.output.choices[0].message.content


def test_dashscope_stream_prepends_sources(native: SearchServer) -> None:
    chunks = list(
        Generation.call(
            api_key=API_KEY,
            model="qwen-plus",
            messages=QUESTION,
            result_format="message",
            enable_search=True,
            search_options={**CITED, "prepend_search_result": True},
            stream=True,
            incremental_output=True,
        )
    )
    assert all(c.status_code == 200 for c in chunks)
    first = chunks[0]
    # The first packet: the sources alone.
    assert first.output.choices[0].message.content == ""
    _check_results(first.output.search_info["search_results"], native)
    answer = "".join(c.output.choices[0].message.content for c in chunks)
    assert answer == "The flamingo procedure rotates keys [ref_1], weekly [ref_1]; see also [9]."
    assert all(c.usage.plugins == {"search": {"count": 1, "strategy": "turbo"}} for c in chunks)
    assert chunks[-1].output.choices[0].finish_reason == "stop"


def test_dashscope_thinking_stream_with_search(native: SearchServer) -> None:
    chunks = list(
        Generation.call(
            api_key=API_KEY,
            model="qwen-plus",
            messages=QUESTION,
            result_format="message",
            enable_thinking=True,
            enable_search=True,
            search_options=SOURCES,
            stream=True,
            incremental_output=True,
        )
    )
    reasoning = "".join(c.output.choices[0].message.reasoning_content for c in chunks)
    assert reasoning == native.engine.reasoning
    assert all(c.output.search_info["search_results"][0]["title"] == "Rotating keys" for c in chunks)
    assert chunks[-1].usage.plugins["search"]["count"] == 1
