"""``SearchTool``: the one object that searches, whoever asks (imports core, search).

The request flow calls it before generation (``web_search``); the tool-calling loop offers
``SearchTool.schema`` to the model and runs ``call`` when the model calls it (``calls``). Its
results are numbered from ``first`` (1 unless earlier searches of the response came before),
which is what citations (``[1]``, ``[ref_1]``) name::

    results = await tool.search("how to rotate keys", "turbo")
    # (SearchResult(index=1, title="Keys", url="file:///srv/docs/keys.md", site_name="docs",
    #               icon="", snippet="… keys revoke KEY_ID …"), ...)
    tool.result_text(results)
    # [1] Keys
    # URL: file:///srv/docs/keys.md
    # … keys revoke KEY_ID …
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thinkserve.core.events import SearchResult
from thinkserve.search.provider import SearchProvider, SearchUnavailable

log = logging.getLogger(__name__)

NAME = "search"
"""The built-in tool's name (Model Studio refuses user tools of that name for the same reason)."""

STRATEGY_RESULTS: Mapping[str, int] = {"turbo": 5, "max": 10}
"""Results per search by ``search_strategy``: ``max`` reads more sources, as on Model Studio."""

SNIPPET_CHARS = 600
"""Characters of each result the model reads, so that ten results stay a modest prompt."""

BAD_CALL = 'Error: call search with {"query": "what to search for"}.'
UNAVAILABLE = "Error: the search is unavailable right now; answer without it."


@dataclass(frozen=True, slots=True)
class SearchRun:
    """One call as the model made it, run."""

    query: str | None
    """What was searched; None when no search ran (no query in the arguments, or the provider
    failed): nothing to report or bill."""
    results: tuple[SearchResult, ...]
    text: str
    """What goes back to the model as the tool's result."""


class SearchTool:
    def __init__(self, provider: SearchProvider) -> None:
        self._provider = provider

    @property
    def provider(self) -> SearchProvider:
        return self._provider

    async def search(self, query: str, strategy: str = "turbo", first: int = 1) -> tuple[SearchResult, ...]:
        """Numbered results (from ``first``), best first; raises ``provider.SearchUnavailable``."""
        limit = STRATEGY_RESULTS.get(strategy, STRATEGY_RESULTS["turbo"])
        hits = await self._provider.search(query, limit)
        return tuple(
            SearchResult(i, h.title, h.url, h.site_name, h.icon, _clip(h.snippet))
            for i, h in enumerate(hits[:limit], start=first)
        )

    async def call(self, arguments: str, strategy: str = "turbo", first: int = 1) -> SearchRun:
        """One call as a model writes it (``arguments``: its JSON text, maybe invalid)::

            await tool.call('{"query": "rotate keys"}', first=6)
            # SearchRun("rotate keys", (SearchResult(6, ...), ...), "[6] Keys\\n...")
            await tool.call("{oops")  # SearchRun(None, (), 'Error: call search with ...')

        The model may ask for a strategy; the request's ``search_strategy`` is the default. A
        provider that fails is logged, and the model reads that the search is unavailable."""
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
        query = parsed.get("query") if isinstance(parsed, dict) else None
        if not isinstance(query, str) or not query.strip():
            return SearchRun(None, (), BAD_CALL)
        asked = parsed.get("strategy") if isinstance(parsed, dict) else None
        if isinstance(asked, str) and asked in STRATEGY_RESULTS:
            strategy = asked
        try:
            results = await self.search(query, strategy, first)
        except SearchUnavailable as exc:
            log.warning("search called by the model failed: %s", exc)
            return SearchRun(None, (), UNAVAILABLE)
        return SearchRun(query, results, self.result_text(results))

    @property
    def schema(self) -> dict[str, Any]:
        """The tool as a chat request lists it (OpenAI ``tools`` item)."""
        return {
            "type": "function",
            "function": {
                "name": NAME,
                "description": (
                    "Search the web (or the operator's document collection) for current or specific "
                    "information. Returns numbered results with title, URL and an excerpt."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "What to search for, in a few words."},
                        "strategy": {
                            "type": "string",
                            "enum": sorted(STRATEGY_RESULTS),
                            "description": "turbo: a few results, fast; max: more results.",
                        },
                    },
                    "required": ["query"],
                },
            },
        }

    @staticmethod
    def result_text(results: tuple[SearchResult, ...]) -> str:
        """The results as the model reads them (a tool message, or the search block of a prompt)."""
        if not results:
            return "No results."
        return "\n\n".join(f"[{r.index}] {r.title}\nURL: {r.url}\n{r.snippet}".rstrip() for r in results)

    async def aclose(self) -> None:
        await self._provider.aclose()


def _clip(text: str) -> str:
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"
