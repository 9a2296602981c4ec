"""What a search backend is and what it finds (imports nothing from thinkserve)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Hit:
    """One result of a provider, best first; ``snippet`` is the matching text."""

    title: str
    url: str
    snippet: str
    site_name: str = ""
    icon: str = ""


class SearchUnavailable(Exception):
    """The provider could not answer (down, timed out, refused): the request goes on unsearched."""


class SearchProvider(Protocol):
    """A search backend: the local folder index or a SearXNG instance."""

    @property
    def name(self) -> str:
        """A short label for logs: ``docs:/srv/docs`` or ``searxng:http://127.0.0.1:8888``."""
        ...

    async def search(self, query: str, limit: int) -> list[Hit]:
        """At most ``limit`` hits, best first; raises ``SearchUnavailable``."""
        ...

    async def aclose(self) -> None: ...
