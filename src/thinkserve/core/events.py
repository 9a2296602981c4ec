"""What the generation service yields: a stream of deltas ending in exactly one ``Finished``."""

from __future__ import annotations

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
