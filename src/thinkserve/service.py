"""The one generation pipeline: validate, render, decode, split, count (imports core, engine,
thinking, models).

Both dialects call ``prepare`` (every client error is raised there, before a byte is sent) and then
iterate ``stream``; a non-streaming response is a fold of the same stream (``collect``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from thinkserve.core.errors import InvalidParameter, ModelNotFound
from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.core.types import ChatRequest, FinishReason, Usage
from thinkserve.engine.protocol import Engine, EngineFinished, EngineRequest, Paused, TokenEvent
from thinkserve.models.catalogue import ModelSpec
from thinkserve.thinking import decision
from thinkserve.thinking.chat_format import ChatFormat, Prompt
from thinkserve.thinking.parser import Segment
from thinkserve.thinking.stops import StopMatcher

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Runtime:
    """A loaded engine and the chat format of its model file."""

    engine: Engine
    chat: ChatFormat


@dataclass(slots=True)
class Progress:
    """The usage of a running plan, updated on every sampled token: metering reads it when a
    stream is cut short between two events (tokens like ``<think>`` yield no event)."""

    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated request, ready to run."""

    request: ChatRequest
    spec: ModelSpec
    runtime: Runtime
    prompt: Prompt
    thinking: bool
    engine_request: EngineRequest
    progress: Progress = field(default_factory=Progress, compare=False)


@dataclass(frozen=True, slots=True)
class Collected:
    """A whole response, folded from the stream."""

    reasoning: str
    answer: str
    finished: Finished


class GenerationService:
    """Turns a ``ChatRequest`` into a stream of ``core.events``."""

    def __init__(self, models: Mapping[str, ModelSpec], runtimes: Mapping[str, Runtime]) -> None:
        self._models = models
        self._runtimes = runtimes

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        return self._models

    def runtime_for(self, spec: ModelSpec) -> Runtime:
        return self._runtimes[spec.engine]

    def prepare(self, request: ChatRequest) -> Plan:
        """Validate against the model's rules and tokenize; raises the client's error."""
        spec = self._models.get(request.model)
        if spec is None:
            raise ModelNotFound(request.model)
        if not request.messages:
            raise InvalidParameter("messages must not be empty", param="messages")
        thinking = decision.decide_thinking(spec, request)
        budget = decision.thinking_budget(spec, request)
        requested_max = decision.max_tokens(spec, request)
        runtime = self._runtimes[spec.engine]
        prompt = runtime.chat.render(request.messages, thinking=thinking)
        context = runtime.engine.context_length
        max_input = min(spec.max_input, context - 1)
        if not 1 <= len(prompt.tokens) <= max_input:
            raise InvalidParameter(f"Range of input length should be [1, {max_input}]", param="messages")
        room = context - len(prompt.tokens)
        default_max = budget + spec.max_output if thinking else spec.max_output
        limit = min(requested_max or default_max, room)
        checkpoint = None
        if thinking and (budget < limit or runtime.chat.prompted):
            checkpoint = runtime.chat.checkpoint(prompt, budget)
        engine_request = EngineRequest(
            request_id=uuid.uuid4().hex,
            prompt=prompt.tokens,
            sampling=request.sampling,
            max_tokens=limit,
            checkpoint=checkpoint,
        )
        return Plan(request, spec, runtime, prompt, thinking, engine_request)

    async def stream(self, plan: Plan) -> AsyncIterator[Event]:
        """Decode ``plan``; always ends with exactly one ``Finished`` unless the engine fails."""
        run = _Run(plan)
        sequence = plan.runtime.engine.submit(plan.engine_request)
        reason: FinishReason | None = None
        cached = 0
        try:
            async for event in sequence:
                if isinstance(event, TokenEvent):
                    for out in run.on_token(event):
                        yield out
                    if run.stops.hit:
                        reason = "stop"
                        break
                elif isinstance(event, Paused):
                    chat = plan.runtime.chat
                    sequence.resume(chat.close_tokens() if event.at_end else chat.early_stop_tokens())
                elif isinstance(event, EngineFinished):
                    reason = event.reason
                    cached = event.cached_tokens
            for out in run.flush(cached):
                yield out
            yield Finished(reason or "stop", run.usage(cached), plan.thinking)
        finally:
            sequence.cancel()


class _Run:
    """Per-request decoding state: the reasoning/answer split, stop strings and token counts."""

    def __init__(self, plan: Plan) -> None:
        self._chat = plan.runtime.chat
        self._splitter = self._chat.splitter(plan.prompt)
        self.stops = StopMatcher(plan.request.stop)
        self._prompt_tokens = len(plan.prompt.tokens)
        self._sampled = 0
        self._reasoning = 0
        self._progress = plan.progress

    def usage(self, cached: int = 0) -> Usage:
        return Usage(self._prompt_tokens, cached, self._sampled, self._reasoning)

    def on_token(self, event: TokenEvent) -> list[Event]:
        if event.injected:
            # Injected tokens move the splitter past </think> but are neither shown nor counted
            # (README: "Thinking budget").
            self._splitter.feed(event.token, event.text)
            return []
        self._sampled += 1
        if self._splitter.in_reasoning and not self._chat.is_tag(event.token):
            self._reasoning += 1
        self._progress.usage = usage = self.usage()
        return self._events(self._splitter.feed(event.token, event.text), usage)

    def flush(self, cached: int) -> list[Event]:
        if self.stops.hit:
            return []
        usage = self.usage(cached)
        out = self._events(self._splitter.finish(), usage)
        if not self.stops.hit and (tail := self.stops.finish()):
            out.append(AnswerDelta(tail, usage))
        return out

    def _events(self, segments: list[Segment], usage: Usage) -> list[Event]:
        out: list[Event] = []
        for segment in segments:
            if segment.channel == "reasoning":
                out.append(ReasoningDelta(segment.text, usage))
                continue
            text, hit = self.stops.feed(segment.text)
            if text:
                out.append(AnswerDelta(text, usage))
            if hit:
                break
        return out


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
