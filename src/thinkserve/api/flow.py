"""The request flow both dialects share once a request is parsed (imports service, platform).

``begin`` admits the request, wraps the stream in metering and pulls the first event before any
byte is sent, so that early failures (overload, rate limits) still get their own status code.
``collect`` folds a begun stream for non-streaming responses; ``close`` ends a stream early.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request

from thinkserve.api.http import read_body
from thinkserve.core.events import Event
from thinkserve.platform.metering import metered
from thinkserve.platform.port import Principal
from thinkserve.service import Collected, Plan, fold
from thinkserve.state import AppState


async def receive(state: AppState, request: Request) -> tuple[Principal, bytes]:
    """Authenticate (before reading the body, as Model Studio does), then read the body."""
    principal = await state.gate.authenticate(
        request.headers.get("authorization"), request.headers.get("x-dashscope-workspace")
    )
    return principal, await read_body(request, state.settings.max_body_bytes)


async def begin(state: AppState, principal: Principal, plan: Plan) -> AsyncIterator[Event]:
    """The metered event stream of ``plan``, its first event already pulled."""
    admission = await state.gate.admit(principal, plan.request.model, len(plan.prompt.tokens))
    events = metered(state.gate, admission, plan.thinking, state.service.stream(plan), plan.progress)
    try:
        first = await anext(events)
    except BaseException:
        await close(events)
        raise
    return _chain(first, events)


async def _chain(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    try:
        yield first
        async for event in rest:
            yield event
    finally:
        await close(rest)


async def collect(events: AsyncIterator[Event]) -> Collected:
    """Fold a begun stream, then close it so usage is recorded before the response leaves."""
    try:
        return await fold(events)
    finally:
        await close(events)


async def close(events: AsyncIterator[Event]) -> None:
    """Close a stream now (records usage, cancels the engine sequence) rather than at collection."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
