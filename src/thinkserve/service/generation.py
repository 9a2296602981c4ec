"""The one generation pipeline: validate, render, decode, count (imports core, engine, thinking,
catalogue).

``prepare`` raises every client error before a byte is sent; ``stream`` then decodes the plan into
``core.events``. A non-streaming response is a fold of the same stream (``core.events.fold``).
Admission and metering around it are ``service.flow``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field

from thinkserve.catalogue import snapshots
from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import ModelNotFound
from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.core.types import ChatRequest, FinishReason, Usage
from thinkserve.engine.protocol import (
    Engine,
    EngineFinished,
    EngineRequest,
    Paused,
    Sequence,
    TokenEvent,
)
from thinkserve.engine.queued import QueuedSequence, Run, TokenRun
from thinkserve.service import tooling, validation
from thinkserve.service.pipeline import DecodePipeline, StopStage
from thinkserve.thinking import budget, decision
from thinkserve.thinking.budget import ThinkingBudget
from thinkserve.thinking.chat_format import ChatFormat, Prompt

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 6
"""Characters per token of the admission estimate: BPE vocabularies average about 4 on English
and fewer on most other text, so 6 rarely overestimates."""


DEPTH = 64
"""An engine's line depth (``service.fair``) where its settings name none."""


@dataclass(slots=True)
class Runtime:
    """A loaded engine and the chat format of its model file."""

    engine: Engine
    chat: ChatFormat
    places: int | None = None
    """Sequences the engine decodes at once (llama.cpp's ``n_seq``): what ``service.fair`` lets in.
    None: no line in front of it (an engine without slots, such as the fake one, takes them all)."""
    depth: int = DEPTH
    """Requests that may wait for a place (the engine's ``max_queue``)."""
    budget: ThinkingBudget = field(init=False)

    def __post_init__(self) -> None:
        self.budget = ThinkingBudget(self.chat)


SETTLE_S = 30.0
"""How long a cancelled generation waits for its engine to answer the cancel (``settle``). The
answer takes one decode step; the bound only matters for an engine that stopped answering, which
the engine process's watchdog (or its crash) ends sooner. A starved machine can take seconds."""


@dataclass(slots=True)
class Progress:
    """The usage of a running plan, updated on every sampled token: metering reads it when a
    stream is cut short between two events (tokens like ``<think>`` yield no event)."""

    usage: Usage = field(default_factory=Usage)
    settling: asyncio.Future[Usage] | None = None
    """Set when the stream was closed before its end: the final usage, once the engine has
    answered the cancel with the tokens it sampled meanwhile (``engine.protocol.Sequence.settle``)."""


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
    tools: tooling.PlannedTools = field(default_factory=tooling.PlannedTools.nothing, compare=False)

    @property
    def thinks_by_default(self) -> bool:
        return self.spec.thinks_by_default()


@dataclass(frozen=True, slots=True)
class Checked:
    """A request validated without tokenizing: enough to admit it and to shape its reply."""

    request: ChatRequest
    spec: ModelSpec
    runtime: Runtime
    thinking: bool
    budget: int
    requested_max: int | None

    @property
    def thinks_by_default(self) -> bool:
        return self.spec.thinks_by_default()

    @property
    def text_chars(self) -> int:
        """Characters of message text: what rendering and tokenizing cost grows with."""
        return sum(len(m.content) + len(m.reasoning or "") for m in self.request.messages)

    @property
    def estimated_tokens(self) -> int:
        """A cheap prompt-token estimate for admission, before tokenizing (``service.flow``,
        README "Keys, limits, metering and billing"): one token per ``CHARS_PER_TOKEN``
        characters, rounded up. It errs low on ordinary text, so that no request is refused for
        tokens it does not have; the exact count tops it up once known
        (``port.Admission.exact_prompt``)."""
        return -(-self.text_chars // CHARS_PER_TOKEN)


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
        return self.render(self.check(request))

    def check(self, request: ChatRequest) -> Checked:
        """The cheap part of ``prepare``: every client error that needs no tokenizing."""
        spec = snapshots.resolve(request.model, self._models)
        if spec is None:
            raise ModelNotFound(request.model)
        validation.check_messages(request)
        thinking = decision.decide_thinking(spec, request)
        tooling.check(spec, request, thinking=thinking)
        return Checked(
            request,
            spec,
            self._runtimes[spec.engine],
            thinking,
            budget.decide_budget(spec, request),
            validation.max_tokens(spec, request),
        )

    def render(self, checked: Checked) -> Plan:
        """The heavy part of ``prepare``: render the chat template and tokenize (CPU-bound; it
        may run off the event loop), then check the prompt against the context."""
        request, spec, runtime, thinking = checked.request, checked.spec, checked.runtime, checked.thinking
        planned = tooling.plan_tools(request, runtime.chat)
        prompt = runtime.chat.render(request.messages, thinking=thinking, tools=planned.tools)
        context = runtime.engine.context_length
        validation.check_input_length(spec, len(prompt.tokens), context)
        room = context - len(prompt.tokens)
        default_max = budget.default_max_tokens(spec, thinking=thinking, budget=checked.budget)
        limit = min(checked.requested_max or default_max, room)
        engine_request = EngineRequest(
            request_id=uuid.uuid4().hex,
            prompt=prompt.tokens,
            sampling=request.sampling,
            max_tokens=limit,
            checkpoint=runtime.budget.checkpoint(prompt, checked.budget, thinking=thinking, max_tokens=limit),
            constraint=tooling.constraint(planned, runtime.chat, thinking=thinking),
            # Stop strings and tool calls end a generation early: the engine must stream for them.
            whole=not request.stream and not any(request.stop) and planned.fmt is None,
        )
        return Plan(request, spec, runtime, prompt, thinking, engine_request, tools=planned)

    async def stream(self, plan: Plan) -> AsyncGenerator[Event, None]:
        """Decode ``plan``; always ends with exactly one ``Finished`` unless the engine fails.

        The engine's events are taken in the runs it delivered them in. For a non-streaming
        request, the deltas of one run are merged (one per channel in a row): the fold gets the
        same text with a step per run instead of one per token."""
        pipeline = _pipeline(plan)
        sequence = plan.runtime.engine.submit(plan.engine_request)
        merge = not plan.request.stream
        bare = merge and pipeline.bare
        progress = plan.progress
        reason: FinishReason | None = None
        cached = 0
        try:
            async for run in _runs(sequence):
                if bare and isinstance(run, TokenRun):
                    # Tokens that came together, and nothing but the engine ends the generation.
                    events = pipeline.feed_run(run)
                    progress.usage = pipeline.usage_so_far
                    for out in events:
                        yield out
                    continue
                held: list[Event] = []
                for event in run:
                    if isinstance(event, TokenEvent):
                        events = pipeline.feed(event)
                        progress.usage = pipeline.usage_so_far
                        if merge:
                            held += events
                        else:
                            for out in events:
                                yield out
                        if pipeline.ended is not None:
                            reason = pipeline.ended
                            break
                    elif isinstance(event, Paused):
                        sequence.resume(plan.runtime.budget.resume_tokens(event))
                    elif isinstance(event, EngineFinished):
                        # ("cancelled" comes only to settle(), after this loop.)
                        reason = "length" if event.reason == "length" else "stop"
                        cached = event.cached_tokens
                for out in _merged(held) if len(held) > 1 else held:
                    yield out
                if pipeline.ended is not None:
                    break
            for out in pipeline.finish(cached):
                yield out
            yield Finished(pipeline.reason(reason or "stop"), pipeline.usage(cached), plan.thinking)
        finally:
            sequence.cancel()
            if reason is None:
                # Closed early (the client went away, or an error): without suspending here (the
                # task may be cancelled), count what the engine sampled before the cancel landed.
                plan.progress.settling = asyncio.ensure_future(_settle(sequence, pipeline, plan.progress))


async def _settle(sequence: Sequence, pipeline: DecodePipeline, progress: Progress) -> Usage:
    """The usage of a cancelled sequence, the tokens still on their way from the engine included
    (fed through the pipeline only to be counted as reasoning or answer)."""
    cached = 0
    try:
        for event in await sequence.settle(SETTLE_S):
            if isinstance(event, TokenEvent):
                pipeline.feed(event)
            elif isinstance(event, EngineFinished):
                cached = event.cached_tokens
    except Exception:
        log.exception("settling a cancelled sequence failed")
    progress.usage = usage = pipeline.usage(cached)
    return usage


def _runs(sequence: Sequence) -> AsyncIterator[Run]:
    """``sequence``'s events in the runs its engine delivered them in, else one by one."""
    if isinstance(sequence, QueuedSequence):
        return sequence.runs()
    return _one_by_one(sequence)


async def _one_by_one(sequence: Sequence) -> AsyncIterator[Run]:
    async for event in sequence:
        yield (event,)


def _merged(events: list[Event]) -> list[Event]:
    """Consecutive reasoning (or answer) deltas as one, with the last one's usage."""
    out: list[Event] = []
    texts: list[str] = []
    last: ReasoningDelta | AnswerDelta | None = None
    for event in events:
        if isinstance(event, ReasoningDelta | AnswerDelta):
            if last is not None and type(event) is type(last):
                texts.append(event.text)
                last = event
                continue
            if last is not None:
                out.append(type(last)("".join(texts), last.usage))
            texts = [event.text]
            last = event
            continue
        if last is not None:
            out.append(type(last)("".join(texts), last.usage))
            last = None
        out.append(event)
    if last is not None:
        out.append(type(last)("".join(texts), last.usage))
    return out


def _pipeline(plan: Plan) -> DecodePipeline:
    """The stages a plan decodes through: think splitter, stop strings, then tool calls."""
    chat = plan.runtime.chat
    return DecodePipeline(
        chat.splitter(plan.prompt),
        # Without stop strings the stage passes everything through: leave it out of the per-token path.
        [StopStage(plan.request.stop)] if any(plan.request.stop) else [],
        prompt_tokens=len(plan.prompt.tokens),
        tags=frozenset(t for t in (chat.start_id, chat.end_id) if t is not None),
        calls=plan.tools.stage(),
    )
