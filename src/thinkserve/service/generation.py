"""The one generation pipeline: validate, render, decode, count (imports core, engine, thinking,
catalogue).

``prepare`` raises every client error before a byte is sent; ``stream`` then decodes the plan into
``core.events``. A non-streaming response is a fold of the same stream (``core.events.fold``).
Admission and metering around it are ``service.flow``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import ModelNotFound
from thinkserve.core.events import Event, Finished
from thinkserve.core.types import ChatRequest, FinishReason, Usage
from thinkserve.engine.protocol import Engine, EngineFinished, EngineRequest, Paused, TokenEvent
from thinkserve.service import validation
from thinkserve.service.pipeline import DecodePipeline, StopStage
from thinkserve.thinking import budget, decision
from thinkserve.thinking.budget import ThinkingBudget
from thinkserve.thinking.chat_format import ChatFormat, Prompt

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Runtime:
    """A loaded engine and the chat format of its model file."""

    engine: Engine
    chat: ChatFormat
    budget: ThinkingBudget = field(init=False)

    def __post_init__(self) -> None:
        self.budget = ThinkingBudget(self.chat)


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

    @property
    def thinks_by_default(self) -> bool:
        return self.spec.thinks_by_default()


class GenerationService:
    """Turns a ``ChatRequest`` into a stream of ``core.events``."""

    def __init__(self, models: Mapping[str, ModelSpec], runtimes: Mapping[str, Runtime]) -> None:
        self._models = models
        self._runtimes = runtimes

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        return self._models

    def prompted(self, spec: ModelSpec) -> bool:
        """Whether the model file behind ``spec`` thinks only when asked by a system instruction."""
        return self._runtimes[spec.engine].chat.prompted

    def prepare(self, request: ChatRequest) -> Plan:
        """Validate against the model's rules and tokenize; raises the client's error."""
        spec = self._models.get(request.model)
        if spec is None:
            raise ModelNotFound(request.model)
        validation.check_messages(request)
        thinking = decision.decide_thinking(spec, request)
        thinking_budget = budget.decide_budget(spec, request)
        requested_max = validation.max_tokens(spec, request)
        runtime = self._runtimes[spec.engine]
        prompt = runtime.chat.render(request.messages, thinking=thinking)
        context = runtime.engine.context_length
        validation.check_input_length(spec, len(prompt.tokens), context)
        room = context - len(prompt.tokens)
        default_max = budget.default_max_tokens(spec, thinking=thinking, budget=thinking_budget)
        limit = min(requested_max or default_max, room)
        engine_request = EngineRequest(
            request_id=uuid.uuid4().hex,
            prompt=prompt.tokens,
            sampling=request.sampling,
            max_tokens=limit,
            checkpoint=runtime.budget.checkpoint(
                prompt, thinking_budget, thinking=thinking, max_tokens=limit
            ),
        )
        return Plan(request, spec, runtime, prompt, thinking, engine_request)

    async def stream(self, plan: Plan) -> AsyncIterator[Event]:
        """Decode ``plan``; always ends with exactly one ``Finished`` unless the engine fails."""
        pipeline = _pipeline(plan)
        sequence = plan.runtime.engine.submit(plan.engine_request)
        reason: FinishReason | None = None
        cached = 0
        try:
            async for event in sequence:
                if isinstance(event, TokenEvent):
                    events = pipeline.feed(event)
                    plan.progress.usage = pipeline.usage_so_far
                    for out in events:
                        yield out
                    if pipeline.ended is not None:
                        reason = pipeline.ended
                        break
                elif isinstance(event, Paused):
                    sequence.resume(plan.runtime.budget.resume_tokens(event))
                elif isinstance(event, EngineFinished):
                    reason = event.reason
                    cached = event.cached_tokens
            for out in pipeline.finish(cached):
                yield out
            yield Finished(reason or "stop", pipeline.usage(cached), plan.thinking)
        finally:
            sequence.cancel()


def _pipeline(plan: Plan) -> DecodePipeline:
    """The stages a plan decodes through: think splitter, then stop strings."""
    chat = plan.runtime.chat
    return DecodePipeline(
        chat.splitter(plan.prompt),
        [StopStage(plan.request.stop)],
        prompt_tokens=len(plan.prompt.tokens),
        tags=frozenset(t for t in (chat.start_id, chat.end_id) if t is not None),
    )
