"""What the rest of the server asks of the platform: who is calling, may they, and what did it cost
(imports platform.keys).

Every route does, in this order::

    principal = await gate.authenticate(authorization_header, workspace_header)
    ... parse + validate the request (service.prepare) ...
    admission = await gate.admit(principal, model, prompt_tokens)      # may raise RateLimited
    async for event in metered(gate, admission, thinking, events): ... # gate.record in finally

Two gates implement it: ``static_keys.StaticKeys`` (a fixed set of keys, no limits, usage in
memory; tests and benchmarks) and ``stored_keys.StoredKeys`` (keys, limits and usage in SQL; what
``thinkserve serve`` runs). Only a gate with an ``administration()`` serves ``/admin/v1``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from thinkserve.platform.keys import ApiKey

if TYPE_CHECKING:
    from thinkserve.platform.metering import UsageRecord
    from thinkserve.platform.report import Hourly


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind an API key."""

    key_id: str
    """A stable, non-secret id of the key (for metering and logs)."""
    name: str
    workspace: str | None = None
    """The workspace its usage is recorded under: a bound key's own; the one an operator key or an
    unbound admin key names; None for an unbound normal key, whatever it names."""
    admin: bool = False
    bound: str | None = None
    """The workspace the key is bound to, which is also the reach of its admin rights; None for an
    unbound key (operator keys included), whose admin rights are global."""


@dataclass(slots=True)
class Admission:
    """A request let through; ``release`` runs the hooks that free what it holds, once."""

    principal: Principal
    model: str
    started: float = field(default_factory=time.monotonic)
    hooks: list[Callable[[], None]] = field(default_factory=list)
    """Run by ``release`` in the order added (concurrency slots, the in-flight gauge)."""
    prompt_tokens: int = 0
    """The prompt tokens counted at admission (an estimate until ``exact_prompt``)."""
    top_ups: list[Callable[[int], None]] = field(default_factory=list)
    """Called with the prompt tokens counted beyond the estimate (the gate's token windows)."""

    def exact_prompt(self, tokens: int) -> None:
        """The prompt is tokenized: count what the admission estimate missed."""
        extra, self.prompt_tokens = tokens - self.prompt_tokens, max(tokens, self.prompt_tokens)
        if extra > 0:
            for hook in self.top_ups:
                hook(extra)

    def on_release(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def release(self) -> None:
        hooks, self.hooks = self.hooks, []
        for hook in hooks:
            hook()


class Administration(Protocol):
    """The admin operations of a gate that keeps keys and usage (``/admin/v1``).

    Each takes the caller's ``scope``: the workspace its admin key is bound to
    (``Principal.bound``), or None for global rights (operator keys, unbound admin keys, the CLI).
    A scoped caller sees, creates, revokes and reads the usage of that workspace's keys only.
    """

    async def create_key(self, key: ApiKey, *, scope: str | None = None) -> None:
        """Store ``key``; raises ``administration.OutOfScope`` for a key outside ``scope``."""

    async def revoke(self, key_id: str, *, scope: str | None = None) -> str | None:
        """Revoke exactly one active key by id or shown prefix; its id, or None when none matched.
        Raises ``keys.AmbiguousKey`` (revoking nothing) when a prefix matches several."""

    async def list_keys(self, *, scope: str | None = None) -> list[tuple[ApiKey, int]]:
        """Every key (revoked ones too) with what it was billed so far, in nano-units."""

    async def usage(
        self,
        since: float,
        until: float | None,
        *,
        model: str | None,
        key_id: str | None,
        by: Collection[str],
        scope: str | None = None,
        workspace: str | None = None,
    ) -> list[Hourly]:
        """Hourly usage (see ``platform.report``), including the requests that just finished;
        ``workspace`` keeps only the usage recorded under it."""


class Gate(Protocol):
    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal: ...

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission: ...

    async def record(self, record: UsageRecord) -> None:
        """Keep ``record``. It is called from a ``finally`` of a stream that may be cancelled or
        closed: it must make the record safe before its first suspension point."""

    def administration(self) -> Administration | None:
        """The admin operations this gate offers; None: ``/admin/v1`` answers 404."""
