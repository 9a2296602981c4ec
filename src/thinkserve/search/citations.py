"""Citation markers in the answer, rewritten into the asked ``citation_format`` (imports core,
search).

Models write ``[1]``, ``[ref_1]`` or ``[^1]`` whatever they were told; each marker that names a
result (1 to the number of results so far: each ``Searched`` in the stream brings the count of
the response's results) becomes the asked format. Reasoning is left as it is. A marker
split across deltas is held back until it is whole::

    AnswerDelta("see [re") AnswerDelta("f_2] and [7]")   format "[<number>]", 3 results
    -> AnswerDelta("see ") AnswerDelta("[2] and [7]")    ([7] names no result: unchanged)
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from thinkserve.core.events import AnswerDelta, Event, Finished, Searched
from thinkserve.search.context import marker

_MARKER = re.compile(r"\[(?:ref_|\^)?(\d{1,3})\]")
_PARTIAL = re.compile(r"\[(?:r(?:e(?:f(?:_\d{0,3})?)?)?|\^\d{0,3}|\d{1,3})?")
_HELD_MAX = len("[ref_999]")


class CitationRewriter:
    def __init__(self, citation_format: str, results: int) -> None:
        self._format = citation_format
        self.results = results
        """How many results markers may name (1 to this)."""
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        start = text.rfind("[")
        cut = len(text)
        if start != -1 and len(text) - start < _HELD_MAX and _PARTIAL.fullmatch(text, start):
            cut = start
        self._held = text[cut:]
        return _MARKER.sub(self._rewrite, text[:cut])

    def finish(self) -> str:
        held, self._held = self._held, ""
        return _MARKER.sub(self._rewrite, held)

    def _rewrite(self, m: re.Match[str]) -> str:
        n = int(m.group(1))
        return marker(self._format, n) if 1 <= n <= self.results else m.group(0)


async def rewritten(events: AsyncIterator[Event], rewriter: CitationRewriter) -> AsyncIterator[Event]:
    """``events`` with the answer's markers rewritten (closing it closes ``events``)."""
    try:
        async for event in events:
            if isinstance(event, AnswerDelta):
                text = rewriter.feed(event.text)
                if text:
                    yield AnswerDelta(text, event.usage)
                continue
            if isinstance(event, Searched):
                rewriter.results = len(event.results)
            elif isinstance(event, Finished):
                tail = rewriter.finish()
                if tail:
                    yield AnswerDelta(tail, event.usage)
            yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
