"""Metering: the one usage record, the stream wrapper that writes it, and what metrics hear of it
(imports core, platform.port).

``metered`` writes exactly one ``UsageRecord`` per admitted request, whichever gate runs; the
gate keeps it (``StoredKeys`` journals it and moves it into SQL, which adds ``cost_nano``).
``ObservedGate`` wraps any gate so that admissions, refusals and finished requests reach a
``MeteringObserver`` (the app's ``monitor.metrics.Metrics``). A record, fresh from ``metered``::

    UsageRecord(id="9f3c…", key_id="key_1a2b3c4d5e6f", workspace=None, model="qwen-plus",
                thinking=True, status="ok", input_tokens=12, cached_tokens=0, output_tokens=40,
                reasoning_tokens=31, ttft_ms=12.3, duration_ms=210.5, at=1732560000.123, cost_nano=0,
                search_calls=1)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from thinkserve.core.errors import Arrearage, RateLimited
from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta, Searched, ToolCallDelta
from thinkserve.core.ids import hex_id
from thinkserve.core.types import Usage
from thinkserve.platform.port import Administration, Admission, Gate, Principal

log = logging.getLogger(__name__)

Status = Literal["ok", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One request's usage: as metered, journaled, stored and read back for reports."""

    id: str
    key_id: str
    workspace: str | None
    model: str
    thinking: bool
    status: str
    """A ``Status``; kept a plain string as it comes back from the journal and SQL."""
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    """Every sampled token, reasoning included."""
    reasoning_tokens: int
    ttft_ms: float | None
    """Admission to the first token; None when none came."""
    duration_ms: float
    """Admission to the end of the stream."""
    at: float
    """Unix time the request finished."""
    cost_nano: int = 0
    """Billed cost (after free quota) in nano-units, as read back from the store; a fresh record
    has 0: the store bills it when it writes it."""
    search_calls: int = 0
    """Web searches whose results went into the request (``enable_search``), billed per call."""

    @property
    def hour(self) -> int:
        """The start of the hour the request finished in (Unix seconds), as reports group it."""
        return int(self.at // 3600 * 3600)

    @property
    def usage(self) -> Usage:
        return Usage(self.input_tokens, self.cached_tokens, self.output_tokens, self.reasoning_tokens)


class LiveUsage(Protocol):
    """The usage of a running generation, ahead of its events (``service.Progress``)."""

    @property
    def usage(self) -> Usage: ...

    @property
    def settling(self) -> asyncio.Future[Usage] | None:
        """The final usage of a generation closed early, once its engine answered the cancel."""
        ...


#: Runs a coroutine after the stream that started it has gone (``service.flow`` keeps the task,
#: and shutdown waits for it).
Defer = Callable[[Coroutine[Any, Any, None]], None]


async def metered(
    gate: Gate,
    admission: Admission,
    thinking: bool,
    events: AsyncIterator[Event],
    live: LiveUsage | None = None,
    defer: Defer | None = None,
) -> AsyncIterator[Event]:
    """Pass ``events`` through and record exactly one ``UsageRecord`` however the stream ends.

    A client that disconnects closes this generator: the record then holds the tokens actually
    generated, with status ``cancelled``. Tokens generated since the last event (a think tag, text
    held back by the splitter) are counted from ``live`` when given; with ``defer`` too, the
    record waits (in a task of its own) for the engine to answer the cancel, so that it also
    counts the tokens sampled before the cancel reached the engine: what was generated, exactly.
    """
    usage = Usage()
    first: float | None = None
    status: Status = "cancelled"
    searches = 0
    try:
        async for event in events:
            if isinstance(event, ReasoningDelta | AnswerDelta | ToolCallDelta):
                usage = event.usage
                if first is None:
                    first = time.monotonic()
            elif isinstance(event, Finished):
                usage = event.usage
                status = "ok"
            elif isinstance(event, Searched):
                searches += 1
            yield event
    except (GeneratorExit, asyncio.CancelledError):
        # The client went away (the generator is closed or its task cancelled): "cancelled".
        raise
    except BaseException:
        status = "error" if status != "ok" else status
        raise
    finally:
        now = time.monotonic()
        ttft = None if first is None else first - admission.started
        settling = None
        if status == "cancelled" and live is not None and defer is not None:
            # Close the inner stream first: that starts the engine's settle. Nothing here may
            # suspend (the task may be cancelled); the record waits in a task of its own.
            if isinstance(events, AsyncGenerator):
                await events.aclose()
            settling = live.settling
        if settling is not None and defer is not None:
            defer(_record_settled(gate, admission, thinking, usage, searches, settling, ttft, now))
        else:
            if status != "ok" and live is not None:
                usage = _larger(usage, live.usage)
            await _record(gate, admission, thinking, status, usage, searches, ttft, now)


def _larger(usage: Usage, live: Usage) -> Usage:
    return live if live.completion_tokens > usage.completion_tokens else usage


async def _record_settled(
    gate: Gate,
    admission: Admission,
    thinking: bool,
    usage: Usage,
    searches: int,
    settling: asyncio.Future[Usage],
    ttft: float | None,
    ended: float,
) -> None:
    try:
        usage = _larger(usage, await settling)
    except Exception:
        log.exception("settling a cancelled stream failed; recording the tokens it had sent")
    await _record(gate, admission, thinking, "cancelled", usage, searches, ttft, ended)


async def _record(
    gate: Gate,
    admission: Admission,
    thinking: bool,
    status: Status,
    usage: Usage,
    searches: int,
    ttft: float | None,
    ended: float,
) -> None:
    admission.release()
    principal = admission.principal
    await gate.record(
        UsageRecord(
            id=hex_id(),
            key_id=principal.key_id,
            workspace=principal.workspace,
            model=admission.model,
            thinking=thinking,
            status=status,
            input_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            output_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            ttft_ms=None if ttft is None else ttft * 1000,
            duration_ms=(ended - admission.started) * 1000,
            at=time.time(),
            search_calls=searches,
        )
    )


class MeteringObserver(Protocol):
    """What metering reports as requests come and go; ``monitor.metrics.Metrics`` is one."""

    def admitted(self, model: str) -> None: ...

    def released(self, model: str) -> None: ...

    def refused(self, model: str, code: str) -> None:
        """An admission refused with Model Studio's ``code`` (``Throttling.RateQuota``, ``Arrearage``)."""

    def finished(
        self, model: str, status: str, thinking: bool, usage: Usage, ttft_s: float | None, duration_s: float
    ) -> None: ...

    def backlog(self, records: int) -> None:
        """Usage records journaled and not yet in SQL."""

    def rate_limiter_failed(self, outcome: str) -> None:
        """The shared rate limiter (Redis) failed a request: ``local`` (limited in process) or ``refused``."""

    def usage_poisoned(self, records: int) -> None:
        """Usage records the store refused, set aside in the dead-letter file."""

    def journal_failed(self, stage: str) -> None:
        """The usage journal failed a ``write`` or an ``fsync`` (the records stay in memory)."""


class ObservedGate:
    """``gate``, with its admissions, refusals and records reported to ``observer``."""

    def __init__(self, gate: Gate, observer: MeteringObserver) -> None:
        self.gate = gate
        self._observer = observer

    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal:
        return await self.gate.authenticate(authorization, workspace)

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission:
        try:
            admission = await self.gate.admit(principal, model, prompt_tokens)
        except (RateLimited, Arrearage) as error:
            self._observer.refused(model, error.code)
            raise
        self._observer.admitted(model)
        admission.on_release(lambda: self._observer.released(model))
        return admission

    async def record(self, record: UsageRecord) -> None:
        # The gate first: it makes the record safe before its first suspension point.
        await self.gate.record(record)
        self._observer.finished(
            record.model,
            record.status,
            record.thinking,
            record.usage,
            None if record.ttft_ms is None else record.ttft_ms / 1000,
            record.duration_ms / 1000,
        )

    def administration(self) -> Administration | None:
        return self.gate.administration()
