"""``SearchCalls``: the built-in ``search`` tool of one request, which the model calls itself
(imports core, tools, search).

It is a ``tools.builtin.BuiltinTool``: offered to the model while the request has searches left
(``MAX_SEARCHES``), run when the model calls it. Results are numbered across the request's
searches, as the client sees them: a first search finds [1]-[5], a second one [6]-[10]; each run
returns a ``Searched`` with every result so far, so that the last one the client reads lists them
all. A run that found nothing still counts (the model asked, the provider answered); one whose
arguments named no query, or whose provider failed, counts toward ``MAX_SEARCHES`` but reports
nothing and bills nothing. The model reads::

    [6] Rotating keys
    URL: file:///srv/docs/keys.md
    … keys revoke KEY_ID …

    After a sentence that uses a result, cite it as [1] (the result's number).

(the last line only with ``enable_citation``, naming the asked format).
"""

from __future__ import annotations

import json

from thinkserve.core.events import Searched, SearchResult
from thinkserve.core.types import SearchOptions, ToolSpec
from thinkserve.search.context import citation_rule
from thinkserve.search.tool import SearchTool
from thinkserve.tools.builtin import Ran

MAX_SEARCHES = 3
"""Searches the model may call per request; after that the tool is no longer offered."""


def search_spec(tool: SearchTool) -> ToolSpec:
    """``SearchTool.schema`` as a tool the template renders; its keys keep the schema's own order
    (a caller's are sorted), so that the prompt shows the schema exactly as written."""
    function = tool.schema["function"]
    parameters = json.dumps(function["parameters"], ensure_ascii=False)
    return ToolSpec(function["name"], function["description"], parameters)


class SearchCalls:
    def __init__(self, tool: SearchTool, options: SearchOptions, limit: int = MAX_SEARCHES) -> None:
        self._tool = tool
        self._options = options
        self._limit = limit
        self._spec = search_spec(tool)
        self.calls = 0
        """Calls run so far, whatever came of them."""
        self.results: tuple[SearchResult, ...] = ()
        """Every result of the request so far, numbered from 1."""

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    @property
    def offered(self) -> bool:
        return self.calls < self._limit

    async def run(self, arguments: str) -> Ran:
        self.calls += 1
        run = await self._tool.call(arguments, self._options.strategy, first=len(self.results) + 1)
        if run.query is None:
            return Ran(run.text)
        self.results += run.results
        text = run.text
        if run.results and self._options.citations:
            text += "\n\n" + citation_rule(self._options)
        return Ran(text, Searched(run.query, self.results, self._options))
