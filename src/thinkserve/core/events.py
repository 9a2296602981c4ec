"""What the generation service yields: a stream of deltas ending in exactly one ``Finished``;
and ``Collected``, the same stream folded for a non-streaming response (imports core).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from thinkserve.core.types import FinishReason, Usage


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


Event = ReasoningDelta | AnswerDelta | Finished


@dataclass(frozen=True, slots=True)
class Collected:
    """A whole response, folded from the stream."""

    reasoning: str
    answer: str
    finished: Finished


async def fold(events: AsyncIterator[Event]) -> Collected:
    """The non-streaming response: the same stream, folded."""
    reasoning: list[str] = []
    answer: list[str] = []
    async for event in events:
        if isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, AnswerDelta):
            answer.append(event.text)
        else:
            return Collected("".join(reasoning), "".join(answer), event)
    raise AssertionError("stream ended without Finished")
