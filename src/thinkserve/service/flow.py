"""The request flow around one generation: admit, meter, pull the first event, close (imports core,
service, platform).

The HTTP layer authenticates and parses, then::

    plan = flow.prepare(request)                  # every client error, before admission
    running = await flow.begin(principal, plan)   # admitted, metered, first event pulled
    collected = await running.collect()           # non-streaming; or iterate running.events
    await running.close()                         # always: records usage, cancels the engine

The first event is pulled before a byte is sent, so that early failures (overload, rate limits)
still get their own status code. A loop running several generations under one admission belongs
here too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.events import Collected, Event, fold
from thinkserve.core.types import ChatRequest
from thinkserve.platform.metering import metered
from thinkserve.platform.port import Gate, Principal
from thinkserve.service.generation import GenerationService, Plan


class Running:
    """A begun generation: its metered events, the first one already pulled."""

    def __init__(self, first: Event, rest: AsyncIterator[Event]) -> None:
        self._rest = rest
        self.events = self._chain(first, rest)

    async def _chain(self, first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
        try:
            yield first
            async for event in rest:
                yield event
        finally:
            await _close(rest)

    async def collect(self) -> Collected:
        """Fold the stream, then close it so usage is recorded before the response leaves."""
        try:
            return await fold(self.events)
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the stream now (records usage, cancels the engine sequence) rather than at
        garbage collection; a client that goes away ends up here."""
        await _close(self.events)
        await _close(self._rest)


class RequestFlow:
    """The generation service behind the platform's admission and metering."""

    def __init__(self, generation: GenerationService, gate: Gate) -> None:
        self._generation = generation
        self._gate = gate

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        return self._generation.models

    def prompted(self, spec: ModelSpec) -> bool:
        return self._generation.prompted(spec)

    def prepare(self, request: ChatRequest) -> Plan:
        return self._generation.prepare(request)

    async def begin(self, principal: Principal, plan: Plan) -> Running:
        """Admit ``plan`` (may raise ``RateLimited``), then start it, metered."""
        gate = self._gate
        admission = await gate.admit(principal, plan.request.model, len(plan.prompt.tokens))
        events = metered(gate, admission, plan.thinking, self._generation.stream(plan), plan.progress)
        try:
            first = await anext(events)
        except BaseException:
            await _close(events)
            raise
        return Running(first, events)


async def _close(events: AsyncIterator[Event]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
