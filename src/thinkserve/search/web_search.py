"""``WebSearch``: the search step of the request flow (imports core, tools, search).

**Who searches.** Model Studio lets the model decide; so does thinkserve where the model can:

- ``enable_search`` alone, on a model whose chat template renders tools, with an answer nothing
  constrains (no JSON mode, no forced call of a caller's tool): the model gets the built-in
  ``search`` tool (``calls.SearchCalls``) and calls it itself, while it thinks, up to
  ``calls.MAX_SEARCHES`` times (``service.rounds`` runs the loop). Each search that ran counts
  and is billed, even one that found nothing; results are numbered across the searches.
- ``forced_search: true``, or a template without tools (or a constrained answer): the search runs
  before generation (``before``), always with ``forced_search``, and the call counts (and is
  billed) even when it finds nothing; the model is then told so. Without ``forced_search`` the
  last user turn is searched and the results are used only when there are some: no result means
  the request runs as if ``enable_search`` were off (no ``search_info``, no ``usage.plugins``,
  nothing billed).
- a provider that fails (down, timed out) is logged and skipped, as Model Studio skips a search
  over its rate limit: the request succeeds without search (a model that called it reads that
  the search is unavailable, and goes on).

A search that ran before generation puts its results into the conversation (``context``) and
comes first in the event stream as ``Searched``, just before the first delta, so that a failure of
the engine still gets its own status code; one the model called comes as a ``Searched`` where it
ran, between two rounds. With ``enable_citation`` the answer's markers are rewritten into the
asked format (``citations``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from thinkserve.core.events import Event, Searched
from thinkserve.core.types import ChatRequest, SearchOptions
from thinkserve.search.calls import SearchCalls
from thinkserve.search.citations import CitationRewriter, rewritten
from thinkserve.search.context import query_of, with_results
from thinkserve.search.folder_index import FolderIndex
from thinkserve.search.folder_watch import FolderWatch
from thinkserve.search.provider import SearchProvider, SearchUnavailable
from thinkserve.search.searxng import SearxngProvider
from thinkserve.search.settings import SearchSettings, check_folder
from thinkserve.search.tool import SearchTool

log = logging.getLogger(__name__)

NOT_SUPPORTED = "This model does not support enable_search."
"""Model Studio's 400 ``InvalidParameter`` for ``enable_search`` on a model without search."""


class WebSearch:
    def __init__(self, tool: SearchTool, watch: FolderWatch | None = None) -> None:
        self.tool = tool
        self._watch = watch

    @classmethod
    async def start(cls, settings: SearchSettings) -> WebSearch | None:
        """The configured provider, started (a folder is indexed first); None when none is."""
        provider: SearchProvider
        watch = None
        if settings.docs is not None:
            check_folder(settings)
            index = FolderIndex(settings.docs, settings.docs_base_url)
            watch = FolderWatch(index)
            await watch.start()
            provider = index
        elif settings.searxng_url is not None:
            provider = SearxngProvider(settings.searxng_url, timeout_s=settings.timeout_s)
        else:
            return None
        log.info("search: %s", provider.name)
        return cls(SearchTool(provider), watch)

    async def before(self, request: ChatRequest) -> tuple[ChatRequest, Searched | None]:
        """``request`` with search results in its conversation, and the search; or ``request``
        unchanged and None when no search is used (see the module's rule)."""
        options = request.search
        query = query_of(request.messages)
        if options is None or query is None:
            return request, None
        try:
            results = await self.tool.search(query, options.strategy)
        except SearchUnavailable as exc:
            log.warning("search skipped: %s", exc)
            return request, None
        if not results and not options.forced:
            return request, None
        searched = Searched(query, results, options)
        return replace(request, messages=with_results(request.messages, searched)), searched

    def calls(self, options: SearchOptions) -> SearchCalls:
        """The search tool of one request whose model calls it itself."""
        return SearchCalls(self.tool, options)

    async def aclose(self) -> None:
        if self._watch is not None:
            await self._watch.aclose()
        await self.tool.aclose()


async def announced(searched: Searched, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """``events`` with ``searched`` just before the first of them (and citations rewritten)."""
    stream = events
    if searched.options.citations:
        stream = rewritten(events, CitationRewriter(searched.options.citation_format, len(searched.results)))
    try:
        first = await anext(stream)
        yield searched
        yield first
        async for event in stream:
            yield event
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def cited(options: SearchOptions, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """``events`` of a request whose model searches itself, with citations rewritten (when asked)
    as its ``Searched`` events bring results."""
    if not options.citations:
        return events
    return rewritten(events, CitationRewriter(options.citation_format, 0))
