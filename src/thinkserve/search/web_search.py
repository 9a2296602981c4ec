"""``WebSearch``: the search step the request flow runs before generation (imports core, search).

**When it searches** (Model Studio lets the model decide; here the rule is fixed):

- ``forced_search: true``: always. The search counts (and is billed) even when it finds nothing;
  the model is then told so.
- otherwise (``enable_search`` alone): the last user turn is searched, and the results are used
  only when there are some. No result means the question needs no search: the request runs as if
  ``enable_search`` were off (no ``search_info``, no ``usage.plugins``, nothing billed).
- a provider that fails (down, timed out) is logged and skipped, as Model Studio skips a search
  over its rate limit: the request succeeds without search.

A search that ran puts its results into the conversation (``context``) and comes first in the
event stream as ``Searched``, just before the first delta, so that a failure of the engine still
gets its own status code. With ``enable_citation`` the answer's markers are rewritten into the
asked format (``citations``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from thinkserve.core.events import Event, Searched
from thinkserve.core.types import ChatRequest
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
