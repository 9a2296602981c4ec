"""Citation markers rewritten into the asked format, also when split across deltas; searches folded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from thinkserve.core.events import AnswerDelta, Event, Finished, Searched, fold
from thinkserve.core.types import SearchOptions, Usage
from thinkserve.search.citations import CitationRewriter


def _run(fmt: str, results: int, pieces: list[str]) -> list[str]:
    rewriter = CitationRewriter(fmt, results)
    out = [rewriter.feed(p) for p in pieces]
    out.append(rewriter.finish())
    return out


def test_markers_become_the_asked_format() -> None:
    assert "".join(_run("[ref_<number>]", 3, ["Yes [1], and [ref_2] or [^3]."])) == (
        "Yes [ref_1], and [ref_2] or [ref_3]."
    )
    assert "".join(_run("[<number>]", 3, ["Yes [ref_1] and [2]."])) == "Yes [1] and [2]."


def test_a_marker_split_across_deltas_is_held_until_whole() -> None:
    out = _run("[<number>]", 3, ["see [re", "f_2", "] and", " [7] [x]"])
    assert out[0] == "see "
    assert "".join(out) == "see [2] and [7] [x]"  # [7] names no result, [x] is no marker


@pytest.mark.parametrize("tail", ["[", "[ref_", "[1"])
def test_an_unfinished_marker_at_the_end_is_released(tail: str) -> None:
    assert "".join(_run("[ref_<number>]", 2, ["end ", tail])) == "end " + tail


def test_text_without_brackets_passes_at_once() -> None:
    assert _run("[<number>]", 1, ["plain", " text"]) == ["plain", " text", ""]


def test_fold_keeps_the_last_search_and_counts_them() -> None:
    first = Searched("a", (), SearchOptions())
    second = Searched("b", (), SearchOptions(strategy="max"))

    async def events() -> AsyncIterator[Event]:
        for event in (first, AnswerDelta("x", Usage()), second, Finished("stop", Usage(), False)):
            yield event

    collected = asyncio.run(fold(events()))
    assert (collected.answer, collected.searched, collected.searches) == ("x", second, 2)
