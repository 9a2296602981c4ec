"""What the generation service yields: a stream of deltas ending in exactly one ``Finished``;
and ``Collected``, the same stream folded for a non-streaming response (imports core).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from thinkserve.core.types import FinishReason, SearchOptions, ToolCall, Usage


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
class ToolCallDelta:
    """A piece of a tool call, with the usage so far. The first piece of call ``index`` carries its
    ``id`` and ``name`` (``arguments`` may be ""); later pieces carry only ``arguments`` text::

        ToolCallDelta(0, "call_3f2a...", "get_current_weather", "", usage)
        ToolCallDelta(0, None, None, '{"location": "Hang', usage)
        ToolCallDelta(0, None, None, 'zhou"}', usage)
    """

    index: int
    id: str | None
    name: str | None
    arguments: str
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
    """A search ran and its results went to the model: before generation (one, just before the
    first delta), or as the result of a call the model made (one per call, between two rounds).
    Metering counts each as one search call."""

    query: str
    results: tuple[SearchResult, ...]
    """Every result of the response so far, numbered from 1 across its searches (this search's
    are the last): the last ``Searched`` lists all the sources the client sees."""
    options: SearchOptions


Event = ReasoningDelta | AnswerDelta | ToolCallDelta | Finished | Searched


@dataclass(frozen=True, slots=True)
class Collected:
    """A whole response, folded from the stream."""

    reasoning: str
    answer: str
    finished: Finished
    tool_calls: tuple[ToolCall, ...] = ()
    searched: Searched | None = None
    """The last search of the response (its ``results``: all of the response's)."""
    searches: int = 0
    """How many searches ran (one before generation; the model may call several)."""


async def fold(events: AsyncIterator[Event]) -> Collected:
    """The non-streaming response: the same stream, folded."""
    reasoning: list[str] = []
    answer: list[str] = []
    searched: Searched | None = None
    searches = 0
    calls: list[tuple[str, str, list[str]]] = []
    async for event in events:
        if isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, AnswerDelta):
            answer.append(event.text)
        elif isinstance(event, Searched):
            searched = event
            searches += 1
        elif isinstance(event, ToolCallDelta):
            if event.index == len(calls):
                calls.append((event.id or "", event.name or "", []))
            calls[event.index][2].append(event.arguments)
        else:
            tool_calls = tuple(ToolCall(i, n, "".join(a)) for i, n, a in calls)
            return Collected(
                "".join(reasoning), "".join(answer), event, tool_calls, searched=searched, searches=searches
            )
    raise AssertionError("stream ended without Finished")
