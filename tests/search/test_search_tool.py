"""``SearchTool``: numbered results by strategy, the function schema a tool-calling loop offers, and
the text a model reads; and the search block a prompt gets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.search.conftest import write_docs
from thinkserve.core.events import Searched
from thinkserve.core.types import Message, SearchOptions
from thinkserve.search.context import query_of, with_results
from thinkserve.search.folder_index import FolderIndex
from thinkserve.search.tool import SearchTool


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
    results, text = asyncio.run(tool.call('{"query": "rotating keys", "strategy": "max"}'))
    assert results[0].title == "Rotating keys" and text.startswith("[1] Rotating keys")
    for bad in ("{oops", "[]", '{"query": ""}', '{"q": "x"}'):
        assert asyncio.run(tool.call(bad)) == ((), 'Error: call search with {"query": "what to search for"}.')
