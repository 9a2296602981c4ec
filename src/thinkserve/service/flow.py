"""The request flow around one generation: admit, meter, pull the first event, close (imports core,
service, platform).

The HTTP layer authenticates and parses, then::

    checked = flow.prepare(request)                 # cheap client errors, before admission
    running = await flow.begin(principal, checked)  # admitted, tokenized, metered, first event pulled
    collected = await running.collect()           # non-streaming; or iterate running.events
    await running.close()                         # always: records usage, cancels the engine

With ``enable_search`` the model gets the search as a tool it calls itself (``service.rounds``
runs the loop), or, with ``forced_search`` or a model that cannot call tools, the search runs once
admitted, before rendering: its results join the conversation and its ``Searched`` event leads the
stream (``search.web_search`` has the rule).

Admission comes before rendering and tokenizing, so that a key out of money or over its rate
limits costs the server no tokenizing; it is admitted on a cheap estimate of its prompt tokens and
charged the exact count once tokenized. A large prompt is rendered and tokenized in a worker thread,
so that it does not stall the event loop (and every other request) meanwhile. A request that fails
to render (its prompt is too long) releases its admission without a usage record: nothing ran.

Admitted and tokenized, a request then waits for a place in its engine in a line that takes keys
in turn (``service.fair``), so that one key's burst cannot starve another key's request.

The first event is pulled before a byte is sent, so that early failures (overload, rate limits)
still get their own status code. A model's tool loop runs under one admission and one place in
the engine's line; the prompts of its later rounds top up the admission's token count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.events import Collected, Event, Searched, fold
from thinkserve.core.types import ChatRequest
from thinkserve.platform.metering import metered
from thinkserve.platform.port import Gate, Principal
from thinkserve.search.web_search import NOT_SUPPORTED, WebSearch, announced, cited
from thinkserve.service import tooling
from thinkserve.service.fair import FairLine
from thinkserve.service.generation import Checked, GenerationService, Plan

OFF_LOOP_CHARS = 2048
"""Message text from which rendering and tokenizing move to a worker thread. ``bench/render.py``
on the 2-core test VM: the hop costs 0.06-0.09 ms; rendering 256 characters 0.1-0.25 ms, 4096
characters 0.8-2 ms, 1 MiB 155-495 ms (fake tokenizer - tiny GGUF). Below about 2k characters the
stall is under a millisecond and the hop would cost a sizeable share of it."""


class Running:
    """A begun generation: its metered events, the first one already pulled."""

    def __init__(self, first: Event, rest: AsyncIterator[Event]) -> None:
        self._rest = rest
        self.events: AsyncIterator[Event] = _Chain(first, rest)

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


class _Chain:
    """``first``, then the events of ``rest``. Not a generator: ``__anext__`` hands out ``rest``'s
    own, so that each event costs no extra frame (this runs once per token)."""

    __slots__ = ("_first", "_rest")

    def __init__(self, first: Event, rest: AsyncIterator[Event]) -> None:
        self._first: Event | None = first
        self._rest = rest

    def __aiter__(self) -> _Chain:
        return self

    def __anext__(self) -> Awaitable[Event]:
        first = self._first
        if first is None:
            return self._rest.__anext__()
        self._first = None
        return _now(first)

    async def aclose(self) -> None:
        self._first = None
        await _close(self._rest)


async def _now(event: Event) -> Event:
    return event


class RequestFlow:
    """The generation service behind the platform's admission and metering."""

    def __init__(self, generation: GenerationService, gate: Gate, search: WebSearch | None = None) -> None:
        self._generation = generation
        self._gate = gate
        self._search = search
        """Web search (``enable_search``); None: no provider configured."""
        self._lines: dict[str, FairLine] = {}
        """One line per engine, by name (several models may share one)."""
        self._deferred: set[asyncio.Task[None]] = set()
        """Usage records of cancelled streams, waiting for their engine's answer to the cancel."""

    def _defer(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._deferred.add(task)
        task.add_done_callback(self._deferred.discard)

    async def settled(self) -> None:
        """Wait for every deferred usage record (each waits for its engine at most
        ``generation.SETTLE_S``): shutdown calls this before it closes the engines and the store."""
        while self._deferred:
            await asyncio.gather(*self._deferred, return_exceptions=True)

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        return self._generation.models

    def waiting(self, engine: str) -> int:
        """Requests waiting for a place in ``engine`` (``service.fair``)."""
        line = self._lines.get(engine)
        return 0 if line is None else line.waiting

    def prompted(self, spec: ModelSpec) -> bool:
        return self._generation.prompted(spec)

    def prepare(self, request: ChatRequest) -> Checked:
        """Every client error that needs no tokenizing (the prompt's length is checked in ``begin``)."""
        if request.search is not None and self._search is None:
            raise InvalidParameter(NOT_SUPPORTED, param="enable_search")
        return self._generation.check(request)

    async def begin(self, principal: Principal, checked: Checked) -> Running:
        """Admit ``checked`` (may raise ``RateLimited``, ``Arrearage``), tokenize it (may raise
        ``InputTooLong``), then start it, metered."""
        gate = self._gate
        admission = await gate.admit(principal, checked.request.model, checked.estimated_tokens)
        try:
            checked, searched = await self._searched(checked)
            plan = await self._render(checked)
            admission.exact_prompt(len(plan.prompt.tokens))
        except BaseException:
            admission.release()
            raise
        placed = self._placed(principal, plan)
        if searched is not None:
            placed = announced(searched, placed)
        elif plan.builtins:
            # The model searches itself: later rounds' prompts count, citations as results come.
            plan.progress.counted = admission.exact_prompt
            if checked.request.search is not None:
                placed = cited(checked.request.search, placed)
        events = metered(gate, admission, plan.thinking, placed, plan.progress, self._defer)
        try:
            first = await anext(events)
        except BaseException:
            await _close(events)
            raise
        return Running(first, events)

    def _placed(self, principal: Principal, plan: Plan) -> AsyncIterator[Event]:
        """``plan``'s events, once its key's turn for a place in the engine came (an engine
        without places takes them at once)."""
        places = plan.runtime.places
        if places is None:
            return self._generation.stream(plan)
        return self._in_line(principal, plan, places)

    async def _in_line(self, principal: Principal, plan: Plan, places: int) -> AsyncIterator[Event]:
        line = self._lines.get(plan.spec.engine)
        if line is None:
            line = self._lines[plan.spec.engine] = FairLine(places, plan.runtime.depth)
        await line.enter(principal.key_id)
        try:
            async with contextlib.aclosing(self._generation.stream(plan)) as stream:
                async for event in stream:
                    yield event
        finally:
            line.leave()

    async def _searched(self, checked: Checked) -> tuple[Checked, Searched | None]:
        """The search tool for the model to call; or the search before generation, whose results
        join the conversation (``search.web_search``)."""
        search, options = self._search, checked.request.search
        if search is None or options is None:
            return checked, None
        if not options.forced and tooling.offers_builtins(checked.request, checked.runtime.chat):
            return replace(checked, builtins=(search.calls(options),)), None
        request, searched = await search.before(checked.request)
        return replace(checked, request=request), searched

    async def _render(self, checked: Checked) -> Plan:
        if checked.text_chars < OFF_LOOP_CHARS:
            return self._generation.render(checked)
        return await asyncio.to_thread(self._generation.render, checked)


async def _close(events: AsyncIterator[Event]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
