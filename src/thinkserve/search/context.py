"""Where search results go in a conversation (imports core, search).

They go into the system turn, where Qwen's chat templates put context: appended to the client's
system message, or as a system message of their own before the first turn. The block::

    # Search results
    Results of a search for: how do I rotate keys

    [1] Keys
    URL: file:///srv/docs/keys.md
    … keys revoke KEY_ID …

    Use these results when they help answer. After a sentence that uses a result, cite it as [1].

The last sentence is there only with ``enable_citation`` (and names the asked format).
"""

from __future__ import annotations

from dataclasses import replace

from thinkserve.core.events import Searched
from thinkserve.core.types import Message, SearchOptions
from thinkserve.search.tool import SearchTool

QUERY_CHARS = 400
"""A search query is at most this much of the question (its start)."""


def query_of(messages: tuple[Message, ...]) -> str | None:
    """What to search for: the last user turn (else the last turn with text), clipped."""
    for role in ("user", None):
        for m in reversed(messages):
            if (role is None or m.role == role) and m.content.strip():
                return " ".join(m.content.split())[:QUERY_CHARS]
    return None


def marker(citation_format: str, index: int) -> str:
    """``[<number>]`` -> ``[1]``; ``[ref_<number>]`` -> ``[ref_1]``."""
    return citation_format.replace("<number>", str(index))


def citation_rule(options: SearchOptions) -> str:
    """What the model is told with ``enable_citation``: ``After a sentence that uses a result,
    cite it as [ref_1] (the result's number).``"""
    first = marker(options.citation_format, 1)
    return f"After a sentence that uses a result, cite it as {first} (the result's number)."


def search_block(searched: Searched) -> str:
    lines = ["# Search results", f"Results of a search for: {searched.query}", ""]
    if searched.results:
        lines.append(SearchTool.result_text(searched.results))
        lines.append("")
        rule = "Use these results when they help answer."
        if searched.options.citations:
            rule += " " + citation_rule(searched.options)
        lines.append(rule)
    else:
        lines.append("The search found nothing: answer from what you know.")
    return "\n".join(lines)


def with_results(messages: tuple[Message, ...], searched: Searched) -> tuple[Message, ...]:
    block = search_block(searched)
    if messages and messages[0].role == "system":
        first = messages[0]
        return (replace(first, content=f"{first.content}\n\n{block}"), *messages[1:])
    return (Message(role="system", content=block), *messages)
