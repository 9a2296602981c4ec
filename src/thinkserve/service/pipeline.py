"""The decode pipeline: engine tokens in, ``core.events`` out, through a chain of stages (imports
core, engine, thinking).

The first stage turns tokens into text segments (the think splitter); each later stage rewrites
the segments and may end the generation early with a finish reason::

    TokenEvent(9707, "Hello ST") -> splitter -> [Segment("answer", "Hello ST")]
                                 -> stops    -> [Segment("answer", "Hello ")]  (holds "ST" of "STOP")

The tool-call parser (``tools.stage``) comes last, when the request offers tools: it turns answer
text into tool-call pieces and may end the generation with ``tool_calls``. The pipeline also
counts the tokens it is fed, so every event carries the usage so far.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from typing import Protocol

from thinkserve.core.events import AnswerDelta, Event, ReasoningDelta, ToolCallDelta
from thinkserve.core.types import FinishReason, Usage
from thinkserve.engine.protocol import TokenEvent
from thinkserve.engine.queued import TokenRun
from thinkserve.thinking.parser import Segment
from thinkserve.thinking.stops import StopMatcher
from thinkserve.tools.stage import ToolCallStage, ToolPiece


class TokenStage(Protocol):
    """The first stage: sampled tokens to text segments (``thinking.parser``'s splitters)."""

    @property
    def in_reasoning(self) -> bool: ...

    def feed(self, token: int, text: str) -> list[Segment]: ...

    def feed_run(
        self, tokens: Sequence[int], texts: Sequence[str], tags: Set[int]
    ) -> tuple[list[Segment], int]:
        """``feed`` of several tokens, joined by channel, and the reasoning tokens among them."""
        ...

    def finish(self) -> list[Segment]: ...


class TextStage(Protocol):
    """A later stage: segments to segments."""

    ended: FinishReason | None
    """Set once this stage ended the generation; nothing more is emitted after that."""

    def feed(self, segments: list[Segment]) -> list[Segment]:
        """Rewrite ``segments``; may hold text back until it can tell what it is."""
        ...

    def finish(self) -> list[Segment]:
        """Release what is held back (the generation ended without this stage ending it)."""
        ...


class StopStage:
    """Cuts the answer at the first stop string (reasoning passes untouched)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._matcher = StopMatcher(stops)
        self._active = any(stops)
        self.ended: FinishReason | None = None

    def feed(self, segments: list[Segment]) -> list[Segment]:
        if not self._active:
            return segments
        out: list[Segment] = []
        for segment in segments:
            if segment.channel == "reasoning":
                out.append(segment)
                continue
            text, hit = self._matcher.feed(segment.text)
            if text:
                out.append(Segment("answer", text))
            if hit:
                self.ended = "stop"
                break
        return out

    def finish(self) -> list[Segment]:
        tail = self._matcher.finish()
        return [Segment("answer", tail)] if tail else []


class DecodePipeline:
    """One request's decoding: the stages, and the token counts behind its usage."""

    def __init__(
        self,
        splitter: TokenStage,
        stages: Sequence[TextStage],
        *,
        prompt_tokens: int,
        tags: frozenset[int],
        calls: ToolCallStage | None = None,
        before: Usage | None = None,
    ) -> None:
        self._splitter = splitter
        self._stages = tuple(stages)
        self._calls = calls
        # ``before``: the usage of the response's earlier rounds (``service.rounds``), which the
        # counts start from, so that every event still carries the response's usage so far.
        base = before or Usage()
        self._prompt_tokens = base.prompt_tokens + prompt_tokens
        self._cached = base.cached_tokens
        # Think-tag token ids: sampled (counted as completion), but not reasoning.
        self._tags = tags
        self._sampled = base.completion_tokens
        self._reasoning = base.reasoning_tokens
        self.ended: FinishReason | None = None
        """The reason of the stage that ended the generation, if one did."""
        self.usage_so_far = Usage()
        """Updated on every sampled token, whether or not it yields an event."""

    @property
    def calls(self) -> ToolCallStage | None:
        return self._calls

    def usage(self, cached: int = 0) -> Usage:
        return Usage(self._prompt_tokens, self._cached + cached, self._sampled, self._reasoning)

    def feed(self, event: TokenEvent) -> list[Event]:
        if event.injected:
            # Injected tokens move the splitter past </think> but are neither shown nor counted
            # (README: "Thinking budget").
            self._splitter.feed(event.token, event.text)
            return []
        self._sampled += 1
        if self._splitter.in_reasoning and event.token not in self._tags:
            self._reasoning += 1
        # Built inline: this runs once per token.
        self.usage_so_far = usage = Usage(self._prompt_tokens, self._cached, self._sampled, self._reasoning)
        segments = self._splitter.feed(event.token, event.text)
        if not segments:
            return []
        for stage in self._stages:
            segments = stage.feed(segments)
            if stage.ended is not None and self.ended is None:
                self.ended = stage.ended
        calls = self._calls
        if calls is None:
            return _events(segments, usage)
        pieces = calls.feed(segments)
        if calls.ended is not None and self.ended is None:
            self.ended = calls.ended
        return _events(pieces, usage)

    @property
    def bare(self) -> bool:
        """Only the splitter: no later stage can end the generation (``feed_run`` applies)."""
        return not self._stages and self._calls is None

    def feed_run(self, run: TokenRun) -> list[Event]:
        """``feed`` for sampled tokens that came together, for a caller that reads only the whole
        answer (a ``bare`` pipeline): the same text and counts, as one delta per channel in a row,
        with the usage after the last token."""
        segments, reasoning = self._splitter.feed_run(run.tokens, run.texts, self._tags)
        self._sampled += len(run.tokens)
        self._reasoning += reasoning
        self.usage_so_far = usage = self.usage()
        return _events(segments, usage)

    def finish(self, cached: int) -> list[Event]:
        """What the stages still hold, once the engine is done."""
        if self.ended is not None:
            return []
        segments = self._splitter.finish()
        for stage in self._stages:
            segments = stage.feed(segments)
            if stage.ended is None:
                segments += stage.finish()
        calls = self._calls
        if calls is None:
            return _events(segments, self.usage(cached))
        pieces = calls.feed(segments)
        if calls.ended is None:
            pieces += calls.finish()
        return _events(pieces, self.usage(cached))

    def reason(self, engine_reason: FinishReason) -> FinishReason:
        """The finish reason: a stage's, or the engine's, where a natural end after tool calls
        is ``tool_calls``."""
        if self.ended is not None:
            return self.ended
        if engine_reason == "stop" and self._calls is not None and self._calls.called:
            return "tool_calls"
        return engine_reason


def _events(segments: Sequence[Segment | ToolPiece], usage: Usage) -> list[Event]:
    # A loop, not a comprehension: this runs once per token and 3.11 gives comprehensions a frame.
    out: list[Event] = []
    for s in segments:
        if isinstance(s, ToolPiece):
            out.append(ToolCallDelta(s.index, s.id, s.name, s.arguments, usage))
        elif s.channel == "reasoning":
            out.append(ReasoningDelta(s.text, usage))
        else:
            out.append(AnswerDelta(s.text, usage))
    return out
