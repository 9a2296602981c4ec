"""One round of decoding: a prompt submitted to the engine, its tokens through the decode pipeline,
out as ``core.events`` ending in ``Finished`` (imports core, engine, service).

Most requests are one round (``service.generation``); a model that calls a built-in tool makes
several (``service.rounds``), each a ``decode`` of its own pipeline, whose counts start from the
earlier rounds' usage.

The engine's events are taken in the runs it delivered them in (``engine.queued.Run``). For a
non-streaming request, the deltas of one run are merged (one per channel in a row): the fold gets
the same text with a step per run instead of one per token.

A response the pipeline ends before the engine does (a complete tool call, a stop string) is cut:
its sequence is cancelled, and ``Finished`` waits (up to ``CUT_S``) for the engine's answer, which
carries the cached prompt tokens; the tokens sampled past the cut are not counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.core.types import FinishReason, Usage
from thinkserve.engine.protocol import EngineFinished, EngineRequest, Paused, Sequence, TokenEvent
from thinkserve.engine.queued import QueuedSequence, Run, TokenRun
from thinkserve.service import tooling
from thinkserve.service.pipeline import DecodePipeline, StopStage
from thinkserve.service.plan import Plan, Progress
from thinkserve.thinking.chat_format import Prompt

log = logging.getLogger(__name__)

SETTLE_S = 30.0
"""How long a cancelled generation waits for its engine to answer the cancel (``settle``). The
answer takes one decode step; the bound only matters for an engine that stopped answering, which
the engine process's watchdog (or its crash) ends sooner. A starved machine can take seconds."""

CUT_S = 2.0
"""How long a response the pipeline ended (a complete call, a stop string) waits for the engine's
answer to the cancel, which says how much of the prompt came from the cache. Past it the response
ends with 0 cached tokens rather than keep the caller waiting."""


def pipeline(
    plan: Plan, prompt: Prompt, tools: tooling.PlannedTools, before: Usage | None = None
) -> DecodePipeline:
    """The stages one round of ``plan`` decodes through: think splitter, stop strings, then tool
    calls; ``before``: the usage of the earlier rounds."""
    chat = plan.runtime.chat
    return DecodePipeline(
        chat.splitter(prompt),
        # Without stop strings the stage passes everything through: leave it out of the per-token path.
        [StopStage(plan.request.stop)] if any(plan.request.stop) else [],
        prompt_tokens=len(prompt.tokens),
        tags=frozenset(t for t in (chat.start_id, chat.end_id) if t is not None),
        calls=tools.stage(),
        before=before,
    )


async def decode(plan: Plan, decoding: DecodePipeline, request: EngineRequest) -> AsyncGenerator[Event, None]:
    """Submit ``request`` and decode it through ``decoding``; always ends with exactly one
    ``Finished`` unless the engine fails."""
    sequence = plan.runtime.engine.submit(request)
    merge = not plan.request.stream
    bare = merge and decoding.bare
    progress = plan.progress
    reason: FinishReason | None = None
    cached = 0
    cut = False  # the pipeline ended the response before the engine did
    try:
        async for run in _runs(sequence):
            if bare and isinstance(run, TokenRun):
                # Tokens that came together, and nothing but the engine ends the generation.
                events = decoding.feed_run(run)
                progress.usage = decoding.usage_so_far
                for out in events:
                    yield out
                continue
            held: list[Event] = []
            for event in run:
                if isinstance(event, TokenEvent):
                    events = decoding.feed(event)
                    progress.usage = decoding.usage_so_far
                    if merge:
                        held += events
                    else:
                        for out in events:
                            yield out
                    if decoding.ended is not None:
                        reason, cut = decoding.ended, True
                        break
                elif isinstance(event, Paused):
                    sequence.resume(plan.runtime.budget.resume_tokens(event))
                elif isinstance(event, EngineFinished):
                    # ("cancelled" comes only to settle(), after this loop.)
                    reason = "length" if event.reason == "length" else "stop"
                    cached = event.cached_tokens
            for out in _merged(held) if len(held) > 1 else held:
                yield out
            if decoding.ended is not None:
                break
        cached = await _cached_when_cut(sequence) if cut else cached
        for out in decoding.finish(cached):
            yield out
        yield Finished(decoding.reason(reason or "stop"), decoding.usage(cached), plan.thinking)
    finally:
        sequence.cancel()
        if reason is None:
            # Closed early (the client went away, or an error): without suspending here (the
            # task may be cancelled), count what the engine sampled before the cancel landed.
            plan.progress.settling = asyncio.ensure_future(settle(sequence, decoding, plan.progress))


async def _cached_when_cut(sequence: Sequence) -> int:
    """The cached prompt tokens of a sequence the pipeline ended before the engine did, from the
    engine's answer to the cancel (or its own end, if that came first). The tokens it sampled past
    the cut are not the response's and are not counted."""
    try:
        left = await sequence.settle(CUT_S)
    except Exception:
        log.exception("settling a cut sequence failed")
        return 0
    return next((e.cached_tokens for e in left if isinstance(e, EngineFinished)), 0)


async def settle(sequence: Sequence, pipeline: DecodePipeline, progress: Progress) -> Usage:
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
