"""What the generation service yields: a stream of deltas ending in exactly one ``Finished``;
and ``Collected``, the same stream folded for a non-streaming response (imports core).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from thinkserve.core.types import FinishReason, SearchOptions, Usage


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's thinking (never empty), with the usage so far."""

    text: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """A piece of the answer (never empty), with the usage so far."""

    text: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of every stream."""

    reason: FinishReason
    usage: Usage
    thinking: bool
    """Whether the request ran in thinking mode (billing and metering need it)."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One numbered source of a search (``index`` from 1, as citations name it)."""

    index: int
    title: str
    url: str
    site_name: str = ""
    icon: str = ""
    snippet: str = ""
    """The matching text the model reads; not sent to the client."""


@dataclass(frozen=True, slots=True)
class Searched:
    """A search ran before the answer and its results went into the prompt: at most one per
    stream, just before the first delta (metering counts it as one search call)."""

    query: str
    results: tuple[SearchResult, ...]
    options: SearchOptions


Event = ReasoningDelta | AnswerDelta | Finished | Searched


@dataclass(frozen=True, slots=True)
class Collected:
    """A whole response, folded from the stream."""

    reasoning: str
    answer: str
    finished: Finished
    searched: Searched | None = None
    """The last search of the response."""
    searches: int = 0
    """How many searches ran (one before generation; a tool-calling loop may run more)."""


async def fold(events: AsyncIterator[Event]) -> Collected:
    """The non-streaming response: the same stream, folded."""
    reasoning: list[str] = []
    answer: list[str] = []
    searched: Searched | None = None
    searches = 0
    async for event in events:
        if isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, AnswerDelta):
            answer.append(event.text)
        elif isinstance(event, Searched):
            searched = event
            searches += 1
        else:
            return Collected("".join(reasoning), "".join(answer), event, searched, searches)
    raise AssertionError("stream ended without Finished")
