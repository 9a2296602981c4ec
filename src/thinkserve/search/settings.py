"""The ``[search]`` table of the config file (imports core).

::

    [search]
    docs = "/srv/docs"                          # the embedded provider: index this folder
    docs_base_url = "https://docs.example.lan/"  # result URLs under this (default: file:// URLs)
    searxng_url = "http://127.0.0.1:8888"        # or: a SearXNG instance (JSON API)
    timeout = 5                                 # seconds per SearXNG request

At most one provider: ``docs`` or ``searxng_url``. ``thinkserve serve --search-docs DIR`` sets
``docs`` (and drops a configured SearXNG). With neither, ``enable_search`` is refused as Model Studio
refuses it for a model without search.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from thinkserve.core.errors import ConfigError

_KEYS = frozenset({"docs", "docs_base_url", "searxng_url", "timeout"})


@dataclass(frozen=True, slots=True)
class SearchSettings:
    docs: Path | None = None
    docs_base_url: str | None = None
    searxng_url: str | None = None
    timeout_s: float = 5.0

    @property
    def configured(self) -> bool:
        return self.docs is not None or self.searxng_url is not None


def _url(table: dict[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https", "file"):
        raise ConfigError(f"[search] {key} must be an http(s) URL, not {value!r}")
    return value


def parse_search(table: dict[str, Any]) -> SearchSettings:
    """``[search]`` -> settings; raises ``ConfigError``."""
    if not isinstance(table, dict):
        raise ConfigError("[search] must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [search]")
    docs = table.get("docs")
    if docs is not None and not isinstance(docs, str):
        raise ConfigError(f"[search] docs must be a folder path, not {docs!r}")
    timeout = table.get("timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 120:
        raise ConfigError(f"[search] timeout must be in (0, 120] seconds, not {timeout!r}")
    settings = SearchSettings(
        docs=None if docs is None else Path(docs).expanduser(),
        docs_base_url=_url(table, "docs_base_url"),
        searxng_url=_url(table, "searxng_url"),
        timeout_s=float(timeout),
    )
    if settings.docs is not None and settings.searxng_url is not None:
        raise ConfigError("[search] names two providers: keep docs or searxng_url")
    return settings


def check_folder(settings: SearchSettings) -> None:
    """The docs folder must exist (checked at start, not when parsed); raises ``ConfigError``."""
    if settings.docs is not None and not settings.docs.is_dir():
        raise ConfigError(f"search docs folder {settings.docs} is not a folder")
