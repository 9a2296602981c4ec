"""The self-hosted web search provider: a SearXNG instance's JSON API (imports search).

One ``GET {url}/search?q=...&format=json`` per search (the instance must list ``json`` under
``search: formats`` in its ``settings.yml``; otherwise it answers 403). The answer's ``results``
are read as SearXNG documents them::

    {"query": "qwen", "number_of_results": 0, "results": [{"url": "https://...", "title": "...",
     "content": "the snippet", "engine": "duckduckgo", "engines": ["duckduckgo"], "score": 1.0,
     "thumbnail": null, ...}], "answers": [], "unresponsive_engines": []}

Further pages are asked for while the hits are fewer than wanted (``max`` wants 10) and the last
page was full, up to ``MAX_PAGES``. Every failure (connection, timeout, a status
other than 200, a body that is not that shape) is ``SearchUnavailable``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from thinkserve.search.provider import Hit, SearchUnavailable

log = logging.getLogger(__name__)

PAGE_SIZE = 10
"""Results SearXNG returns per page (its default)."""
MAX_PAGES = 3
"""Pages one search may ask for, when earlier pages held results without a usable URL."""


class SearxngProvider:
    def __init__(
        self, url: str, *, timeout_s: float = 5.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=True,
        )

    @property
    def name(self) -> str:
        return f"searxng:{self._url}"

    async def search(self, query: str, limit: int) -> list[Hit]:
        hits: list[Hit] = []
        seen: set[str] = set()
        page = 1
        while len(hits) < limit:
            found = await self._page(query, page)
            for item in found:
                hit = _hit(item)
                if hit is not None and hit.url not in seen:
                    seen.add(hit.url)
                    hits.append(hit)
            if len(found) < PAGE_SIZE or page >= MAX_PAGES:
                break
            page += 1
        return hits[:limit]

    async def _page(self, query: str, page: int) -> list[Any]:
        params = {"q": query, "format": "json", "pageno": str(page)}
        try:
            response = await self._client.get(f"{self._url}/search", params=params)
        except httpx.HTTPError as exc:
            raise SearchUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise SearchUnavailable(f"{self.name}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise SearchUnavailable(f"{self.name}: the answer is not JSON") from exc
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise SearchUnavailable(f"{self.name}: the answer has no results list")
        if not results and body.get("unresponsive_engines"):
            log.warning("%s: no results, unresponsive engines: %s", self.name, body["unresponsive_engines"])
        return results

    async def aclose(self) -> None:
        await self._client.aclose()


def _hit(item: Any) -> Hit | None:
    """A SearXNG result as a hit; None for one without a usable URL."""
    if not isinstance(item, dict):
        return None
    url = item.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        return None
    title = item.get("title")
    content = item.get("content")
    return Hit(
        title=title.strip() if isinstance(title, str) and title.strip() else url,
        url=url,
        snippet=content.strip() if isinstance(content, str) else "",
        site_name=urlsplit(url).hostname or "",
    )
