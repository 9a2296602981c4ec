"""What both dialects ask of the platform for every request: who is calling, may they, and what
did it cost (imports core).

Every route does, in this order::

    principal = await gate.authenticate(authorization_header, workspace_header)
    ... parse + validate the request (service.prepare) ...
    admission = await gate.admit(principal, model, prompt_tokens)      # may raise RateLimited
    async for event in gate.metered(admission, thinking, events): ...  # records usage in finally

``StaticKeys`` is the embedded default: a fixed set of keys, no limits, usage kept in memory only.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from thinkserve.core.errors import InvalidApiKey
from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.core.types import Usage

Status = Literal["ok", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind an API key."""

    key_id: str
    """A stable, non-secret id of the key (for metering and logs)."""
    name: str
    workspace: str | None = None
    admin: bool = False


@dataclass(slots=True)
class Admission:
    """A request let through; ``release`` frees its concurrency slot (idempotent)."""

    principal: Principal
    model: str
    started: float = field(default_factory=time.monotonic)

    def release(self) -> None:
        """Hook for limiters; the base admission holds nothing."""


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One request's usage, as metered."""

    principal: Principal
    model: str
    thinking: bool
    usage: Usage
    status: Status
    ttft_s: float | None
    duration_s: float
    finished_at: float


def parse_bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Gate(Protocol):
    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal: ...

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission: ...

    async def record(self, record: UsageRecord) -> None:
        """Keep ``record``. It is called from a ``finally`` of a stream that may be cancelled or
        closed: it must make the record safe before its first suspension point."""


class LiveUsage(Protocol):
    """The usage of a running generation, ahead of its events (``service.Progress``)."""

    @property
    def usage(self) -> Usage: ...


async def metered(
    gate: Gate,
    admission: Admission,
    thinking: bool,
    events: AsyncIterator[Event],
    live: LiveUsage | None = None,
) -> AsyncIterator[Event]:
    """Pass ``events`` through and record exactly one ``UsageRecord`` however the stream ends.

    A client that disconnects closes this generator: the record then holds the tokens actually
    generated so far, with status ``cancelled``. Tokens generated since the last event (a think
    tag, text held back by the splitter) are counted from ``live`` when given.
    """
    usage = Usage()
    first: float | None = None
    status: Status = "cancelled"
    try:
        async for event in events:
            if isinstance(event, ReasoningDelta | AnswerDelta):
                usage = event.usage
                if first is None:
                    first = time.monotonic()
            elif isinstance(event, Finished):
                usage = event.usage
                status = "ok"
            yield event
    except (GeneratorExit, asyncio.CancelledError):
        # The client went away (the generator is closed or its task cancelled): "cancelled".
        raise
    except BaseException:
        status = "error" if status != "ok" else status
        raise
    finally:
        if status != "ok" and live is not None and live.usage.completion_tokens > usage.completion_tokens:
            usage = live.usage
        admission.release()
        now = time.monotonic()
        await gate.record(
            UsageRecord(
                principal=admission.principal,
                model=admission.model,
                thinking=thinking,
                usage=usage,
                status=status,
                ttft_s=None if first is None else first - admission.started,
                duration_s=now - admission.started,
                finished_at=time.time(),
            )
        )


class StaticKeys:
    """Keys from ``THINKSERVE_API_KEYS`` / the config file; no limits; the last records in memory."""

    def __init__(self, keys: Iterable[str], *, keep: int = 1000) -> None:
        self._keys = [k.encode() for k in keys]
        self._keep = keep
        self.records: list[UsageRecord] = []

    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal:
        token = parse_bearer(authorization)
        if token is None:
            raise InvalidApiKey("You didn't provide an API key. ")
        candidate = token.encode()
        # compare_digest against every key: the time taken does not tell which key was close.
        matched = [i for i, key in enumerate(self._keys) if hmac.compare_digest(candidate, key)]
        if not matched:
            raise InvalidApiKey()
        return Principal(key_id=f"static-{matched[0]}", name="bootstrap", workspace=workspace)

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission:
        return Admission(principal, model)

    async def record(self, record: UsageRecord) -> None:
        self.records.append(record)
        del self.records[: -self._keep]
