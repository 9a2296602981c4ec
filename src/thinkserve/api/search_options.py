"""``enable_search`` and ``search_options``, the same in both dialects (imports api, core).

OpenAI-compatible: top-level keys (the Python SDK's ``extra_body``); DashScope: in ``parameters``::

    "enable_search": true,
    "search_options": {"forced_search": true, "search_strategy": "max", "enable_source": true,
                       "enable_citation": true, "citation_format": "[ref_<number>]",
                       "prepend_search_result": true}

``search_options`` counts only with ``enable_search: true`` (Model Studio ignores it otherwise).
``citation_format`` takes Model Studio's two spellings of each choice (``"[<number>]"``/``"[]"``,
``"[ref_<number>]"``/``"[ref_]"``). The ``agent`` strategies and the options thinkserve does not
serve are refused by name, never ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError

from thinkserve.api import params
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.events import SearchResult
from thinkserve.core.types import SearchOptions

STRATEGIES = ("turbo", "max")
AGENT_STRATEGIES = ("agent", "agent_max")
CITATION_FORMATS = {
    "[<number>]": "[<number>]",
    "[]": "[<number>]",
    "[ref_<number>]": "[ref_<number>]",
    "[ref_]": "[ref_<number>]",
}
UNSERVED = ("enable_search_extension", "freshness", "assigned_site_list", "intention_options")


class _Options(BaseModel):
    model_config = ConfigDict(extra="allow")

    forced_search: StrictBool | None = None
    search_strategy: StrictStr | None = None
    enable_source: StrictBool | None = None
    enable_citation: StrictBool | None = None
    citation_format: StrictStr | None = None
    prepend_search_result: StrictBool | None = None


def search_options(enable_search: bool | None, raw: Any) -> SearchOptions | None:
    """The request's search, None when ``enable_search`` is not true; raises ``InvalidParameter``."""
    if not enable_search:
        return None
    if raw is None:
        return SearchOptions()
    if not isinstance(raw, dict):
        raise InvalidParameter("The search_options parameter must be an object", param="search_options")
    try:
        wire = _Options.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        raise InvalidParameter(
            f"The search_options.{name} parameter is invalid: {first['msg']}", param="search_options"
        ) from None
    for name in UNSERVED:
        if raw.get(name) not in (None, False):
            raise params.unsupported(f"search_options.{name}")
    strategy = wire.search_strategy or "turbo"
    if strategy in AGENT_STRATEGIES:
        raise params.unsupported(f"search_options.search_strategy {strategy}")
    if strategy not in STRATEGIES:
        raise InvalidParameter(
            "The search_options.search_strategy parameter must be one of turbo, max, agent, agent_max",
            param="search_options",
        )
    fmt = CITATION_FORMATS.get(wire.citation_format or "[<number>]")
    if fmt is None:
        raise InvalidParameter(
            'The search_options.citation_format parameter must be "[<number>]" or "[ref_<number>]"',
            param="search_options",
        )
    # Model Studio: citations and prepending need enable_source (markers without sources name nothing).
    sources = bool(wire.enable_source)
    return SearchOptions(
        forced=bool(wire.forced_search),
        strategy=strategy,
        sources=sources,
        citations=sources and bool(wire.enable_citation),
        citation_format=fmt,
        prepend=sources and bool(wire.prepend_search_result),
    )


def search_info(results: tuple[SearchResult, ...]) -> dict[str, Any]:
    """``{"search_results": [{"index", "title", "url", "site_name", "icon"}]}`` of ``Searched.results``."""
    return {
        "search_results": [
            {"index": r.index, "title": r.title, "url": r.url, "site_name": r.site_name, "icon": r.icon}
            for r in results
        ]
    }


def plugins(strategy: str, count: int = 1) -> dict[str, Any]:
    """``usage.plugins`` of a request that searched ``count`` times."""
    return {"search": {"count": count, "strategy": strategy}}
