"""``SearchTool``: numbered results by strategy, the function schema a tool-calling loop offers, and
the text a model reads; and the search block a prompt gets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.search.conftest import write_docs
from thinkserve.core.events import Searched
from thinkserve.core.types import Message, SearchOptions
from thinkserve.search.calls import SearchCalls
from thinkserve.search.context import query_of, with_results
from thinkserve.search.folder_index import FolderIndex
from thinkserve.search.provider import Hit, SearchUnavailable
from thinkserve.search.tool import BAD_CALL, UNAVAILABLE, SearchRun, SearchTool


def _tool(tmp_path: Path, files: int = 0) -> SearchTool:
    docs = write_docs(tmp_path / "docs")
    for i in range(files):
        (docs / f"f{i}.txt").write_text(f"flamingo note {i}\n")
    index = FolderIndex(docs)
    index.sync()
    return SearchTool(index)


def test_results_are_numbered_and_bounded_by_strategy(tmp_path: Path) -> None:
    tool = _tool(tmp_path, files=12)
    turbo = asyncio.run(tool.search("flamingo", "turbo"))
    most = asyncio.run(tool.search("flamingo", "max"))
    assert [r.index for r in turbo] == [1, 2, 3, 4, 5]
    assert [r.index for r in most] == list(range(1, 11))
    assert all(r.snippet for r in most)


def test_schema_is_a_function_tool_named_search(tmp_path: Path) -> None:
    schema = _tool(tmp_path).schema
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "search"
    assert function["parameters"]["required"] == ["query"]
    assert function["parameters"]["properties"]["strategy"]["enum"] == ["max", "turbo"]


def test_result_text_and_the_prompt_block(tmp_path: Path) -> None:
    tool = _tool(tmp_path)
    results = asyncio.run(tool.search("rotating keys", "turbo"))
    text = SearchTool.result_text(results)
    assert text.startswith("[1] Rotating keys\nURL: file://")
    assert SearchTool.result_text(()) == "No results."
    searched = Searched(
        "rotating keys", results, SearchOptions(citations=True, citation_format="[ref_<number>]")
    )
    own = with_results((Message("user", "rotating keys?"),), searched)
    assert [m.role for m in own] == ["system", "user"]
    assert own[0].content.startswith(
        "# Search results\nResults of a search for: rotating keys\n\n[1] Rotating"
    )
    assert own[0].content.endswith("cite it as [ref_1] (the result's number).")
    joined = with_results((Message("system", "Be brief."), Message("user", "q")), searched)
    assert joined[0].content.startswith("Be brief.\n\n# Search results")
    assert len(joined) == 2


def test_query_is_the_last_user_turn() -> None:
    messages = (Message("system", "sys"), Message("user", "first"), Message("assistant", "a"))
    assert query_of((*messages, Message("user", "  second   question "))) == "second question"
    assert query_of(messages) == "first"
    assert query_of((Message("system", "only system"),)) == "only system"


def test_a_model_call_gets_results_and_text(tmp_path: Path) -> None:
    tool = _tool(tmp_path)
    run = asyncio.run(tool.call('{"query": "rotating keys", "strategy": "max"}'))
    assert run.query == "rotating keys"
    assert run.results[0].title == "Rotating keys" and run.text.startswith("[1] Rotating keys")
    later = asyncio.run(tool.call('{"query": "rotating keys"}', first=6))
    assert later.results[0].index == 6 and later.text.startswith("[6] Rotating keys")
    assert asyncio.run(tool.call('{"query": "quasars"}')) == SearchRun("quasars", (), "No results.")
    for bad in ("{oops", "[]", '{"query": ""}', '{"q": "x"}'):
        assert asyncio.run(tool.call(bad)) == SearchRun(None, (), BAD_CALL)


class _Down:
    name = "down"

    async def search(self, query: str, limit: int) -> list[Hit]:
        raise SearchUnavailable("down: refused")

    async def aclose(self) -> None:
        return None


def test_a_failed_provider_tells_the_model() -> None:
    run = asyncio.run(SearchTool(_Down()).call('{"query": "anything"}'))
    assert run == SearchRun(None, (), UNAVAILABLE)


def test_calls_number_results_across_searches_and_stop_being_offered(tmp_path: Path) -> None:
    options = SearchOptions(sources=True, citations=True, citation_format="[ref_<number>]")
    calls = SearchCalls(_tool(tmp_path), options, limit=2)
    # Offered as the schema is written, its keys in their own order.
    function = _tool(tmp_path / "again").schema["function"]
    assert (calls.spec.name, calls.spec.description) == (function["name"], function["description"])
    assert list(json.loads(calls.spec.parameters).items()) == list(function["parameters"].items())
    first = asyncio.run(calls.run('{"query": "flamingo"}'))
    assert isinstance(first.event, Searched)
    assert [r.index for r in first.event.results] == [1, 2]
    assert first.text.endswith(
        "\n\nAfter a sentence that uses a result, cite it as [ref_1] (the result's number)."
    )
    assert calls.offered
    bad = asyncio.run(calls.run("{oops"))
    assert bad.event is None and bad.text == BAD_CALL
    assert not calls.offered  # a bad call used one up too
    assert [r.index for r in calls.results] == [1, 2]


def test_a_second_search_continues_the_numbering(tmp_path: Path) -> None:
    calls = SearchCalls(_tool(tmp_path), SearchOptions())
    asyncio.run(calls.run('{"query": "flamingo"}'))
    second = asyncio.run(calls.run('{"query": "rotating keys"}'))
    assert isinstance(second.event, Searched)
    assert second.event.query == "rotating keys"
    assert [r.index for r in second.event.results] == [1, 2, 3]
    assert second.text.startswith("[3] Rotating keys")  # no enable_citation: no rule
    assert "cite" not in second.text
