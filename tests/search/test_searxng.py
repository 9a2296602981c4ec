"""The SearXNG provider against a local stand-in that serves SearXNG's documented JSON shape
(``GET /search?q=...&format=json``; 403 when the instance does not allow JSON)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from openai import OpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import API_KEY, LiveServer, app_with, free_port, serve, stop
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.search.provider import SearchUnavailable
from thinkserve.search.searxng import SearxngProvider
from thinkserve.search.settings import SearchSettings


def _result(q: str, page: int, i: int) -> dict[str, Any]:
    """One ``results[]`` item with the fields SearXNG's result types serialise."""
    url = f"https://site{i}.example.org/{q.replace(' ', '-')}/p{page}"
    return {
        "url": url,
        "title": f"{q} result {page}.{i}",
        "content": f"About {q}: snippet {page}.{i}.",
        "engine": "duckduckgo",
        "engines": ["duckduckgo", "brave"],
        "positions": [i],
        "score": 1.0 / i,
        "category": "general",
        "publishedDate": None,
        "pubdate": None,
        "thumbnail": None,
        "img_src": "",
        "iframe_src": "",
        "template": "default.html",
        "priority": "",
        "parsed_url": ["https", f"site{i}.example.org", f"/{q}", "", "", ""],
    }


@dataclass
class StandIn:
    live: LiveServer
    state: dict[str, Any] = field(default_factory=dict)
    """``queries`` (the query parameters of each request) and ``json_allowed``."""

    @property
    def url(self) -> str:
        return self.live.base_url

    @property
    def queries(self) -> list[dict[str, str]]:
        return list(self.state["queries"])


def _standin_app(state: dict[str, Any]) -> Starlette:
    async def search(request: Request) -> Response:
        params = dict(request.query_params)
        state["queries"].append(params)
        if params.get("format") != "json" or not state["json_allowed"]:
            return Response("Forbidden", status_code=403)
        q, page = params["q"], int(params.get("pageno", "1"))
        if page == 1:
            # A full page, two of its results without an http(s) URL (a magnet link, no URL).
            results = [_result(q, 1, i) for i in range(1, 9)]
            results += [{**_result(q, 1, 9), "url": "magnet:?xt=urn:btih:abc"}, {"title": "no url"}]
        else:
            results = [_result(q, page, i) for i in range(1, 4)]
        return JSONResponse(
            {
                "query": q,
                "number_of_results": 0,
                "results": results,
                "answers": [],
                "corrections": [],
                "infoboxes": [],
                "suggestions": [],
                "unresponsive_engines": [],
            }
        )

    return Starlette(routes=[Route("/search", search, methods=["GET", "POST"])])


@pytest.fixture
def standin() -> Iterator[StandIn]:
    state: dict[str, Any] = {"queries": [], "json_allowed": True}
    live, running = serve(_standin_app(state))
    try:
        yield StandIn(live, state)
    finally:
        stop(running)


def test_turbo_reads_one_page(standin: StandIn) -> None:
    async def go() -> list[Any]:
        provider = SearxngProvider(standin.url)
        try:
            return await provider.search("qwen thinking", 5)
        finally:
            await provider.aclose()

    hits = asyncio.run(go())
    assert [h.title for h in hits] == [f"qwen thinking result 1.{i}" for i in range(1, 6)]
    assert hits[0].url == "https://site1.example.org/qwen-thinking/p1"
    assert hits[0].site_name == "site1.example.org"
    assert hits[0].snippet == "About qwen thinking: snippet 1.1."
    assert standin.queries == [{"q": "qwen thinking", "format": "json", "pageno": "1"}]


def test_max_reads_on_when_a_full_page_had_unusable_results(standin: StandIn) -> None:
    async def go() -> list[Any]:
        provider = SearxngProvider(standin.url + "/")
        try:
            return await provider.search("x", 10)
        finally:
            await provider.aclose()

    hits = asyncio.run(go())
    assert len(hits) == 10
    assert [h.url for h in hits[-2:]] == ["https://site1.example.org/x/p2", "https://site2.example.org/x/p2"]
    assert [q["pageno"] for q in standin.queries] == ["1", "2"]


def test_json_not_allowed_and_down_are_unavailable(standin: StandIn) -> None:
    async def go(url: str) -> None:
        provider = SearxngProvider(url, timeout_s=2)
        try:
            await provider.search("x", 5)
        finally:
            await provider.aclose()

    # An instance without json in its settings' search: formats.
    standin.state["json_allowed"] = False
    with pytest.raises(SearchUnavailable, match="HTTP 403"):
        asyncio.run(go(standin.url))
    with pytest.raises(SearchUnavailable, match="ConnectError"):
        asyncio.run(go(f"http://127.0.0.1:{free_port()}"))


def _searching_server(url: str) -> tuple[LiveServer, Any, FakeEngine]:
    engine = FakeEngine(answer="From the web [1].")
    settings = Settings(api_keys=(API_KEY,), search=SearchSettings(searxng_url=url, timeout_s=2))
    live, running = serve(app_with(engine, settings=settings))
    return live, running, engine


def test_forced_search_through_searxng_in_the_openai_dialect(standin: StandIn) -> None:
    live, running, engine = _searching_server(standin.url)
    try:
        client = OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
        completion = client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "latest qwen release"}],
            extra_body={
                "enable_search": True,
                "search_options": {"forced_search": True, "enable_source": True, "search_strategy": "max"},
            },
        )
    finally:
        stop(running)
    results = (completion.model_extra or {})["search_info"]["search_results"]
    assert len(results) == 10
    assert results[0] == {
        "index": 1,
        "title": "latest qwen release result 1.1",
        "url": "https://site1.example.org/latest-qwen-release/p1",
        "site_name": "site1.example.org",
        "icon": "",
    }
    assert standin.queries[0]["q"] == "latest qwen release"
    assert "About latest qwen release: snippet 1.1." in engine.tokenizer.decode(engine.stats.prompts[-1])


def test_searxng_down_skips_the_search_and_answers() -> None:
    live, running, _ = _searching_server(f"http://127.0.0.1:{free_port()}")
    try:
        client = OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
        completion = client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "latest qwen release"}],
            extra_body={
                "enable_search": True,
                "search_options": {"forced_search": True, "enable_source": True},
            },
        )
    finally:
        stop(running)
    assert completion.choices[0].message.content == "From the web [1]."
    assert "search_info" not in (completion.model_extra or {})
    assert completion.usage is not None and "plugins" not in (completion.usage.model_extra or {})
