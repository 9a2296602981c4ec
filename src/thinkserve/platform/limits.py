"""Rate limits: what is limited, and the in-process sliding windows (imports core).

Model Studio limits requests per minute (RPM) and tokens per minute (TPM), and enforces both per
second too (RPS = RPM/60, TPS = TPM/60), so that a burst trips the limit before the minute is used.
Windows here are sliding logs: a request is let through when the requests (or tokens) of the last
60 s (and of the last 1 s) plus its own stay within the limit. Prompt tokens are counted when the
request is admitted; output tokens when it is recorded (they are not known before).

The per-second token window (TPS, the burst) is a share of the minute, not a cap on one request: a
request larger than it is let through when that window is empty, and counted in full, so it uses
up the second and the requests after it wait until it leaves (1 s later). Only the minute window
bounds a request's size: a prompt over the TPM itself can never pass.

Config (``[limits."*"]`` applies to models without a table of their own; every table applies to
each key and model pair, as Model Studio's limits apply to each account and model)::

    [limits."qwen-plus"]
    rpm = 600
    tpm = 1000000
    rps = 10            # default: ceil(rpm / 60)
    tps = 16667         # default: ceil(tpm / 60)
    concurrency = 16    # requests in flight per key and model, per server process
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

from thinkserve.core.errors import Overloaded, RateLimited

Code = Literal["Throttling.RateQuota", "Throttling.BurstRate", "Throttling.AllocationQuota"]
MINUTE = 60.0
SECOND = 1.0


class LimitsError(ValueError):
    """A malformed ``[limits]`` table."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one scope; None: unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    rps: int | None = None
    tps: int | None = None
    concurrency: int | None = None

    @property
    def burst_requests(self) -> int | None:
        if self.rps is not None:
            return self.rps
        return None if self.rpm is None else max(1, math.ceil(self.rpm / 60))

    @property
    def burst_tokens(self) -> int | None:
        if self.tps is not None:
            return self.tps
        return None if self.tpm is None else max(1, math.ceil(self.tpm / 60))


def parse_limits(tables: dict[str, Any]) -> dict[str, Limits]:
    """``[limits.MODEL]`` tables -> limits; raises ``LimitsError``."""
    names = {f.name for f in fields(Limits)}
    out: dict[str, Limits] = {}
    for model, table in tables.items():
        if not isinstance(table, dict):
            raise LimitsError(f"[limits.{model!r}] must be a table")
        for key, value in table.items():
            if key not in names:
                raise LimitsError(f"unknown key {key!r} in [limits.{model!r}]")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LimitsError(f"bad {key} {value!r} in [limits.{model!r}]: a count >= 0")
        out[model] = Limits(**table)
    return out


@dataclass(frozen=True, slots=True)
class Check:
    """One window to pass: ``amount`` more within ``limit`` over the last ``span`` seconds."""

    window: str
    """The window's name, e.g. ``key:key_1a2b:req:60``."""
    span: float
    limit: int | None
    """None: add ``amount`` without checking (output tokens counted after the fact)."""
    amount: int
    code: Code
    oversize: bool = False
    """An ``amount`` over ``limit`` passes when the window is empty (it then fills the window)."""

    def over(self, total: int) -> int:
        """How far ``total`` in the window plus this amount is over the limit (<= 0: it fits).

        With ``oversize``, the amount counts as at most the limit, so that it fits an empty window.
        """
        assert self.limit is not None
        amount = min(self.amount, self.limit) if self.oversize and self.limit > 0 else self.amount
        return total + amount - self.limit


_MESSAGES: dict[Code, str] = {
    "Throttling.RateQuota": "Requests rate limit exceeded, please try again later.",
    "Throttling.BurstRate": "Request rate increased too quickly, please try again later.",
    "Throttling.AllocationQuota": "Allocated quota exceeded, please increase your quota limit.",
}


def rejection(check: Check, wait: float) -> RateLimited:
    return RateLimited(_MESSAGES[check.code], code=check.code, retry_after=max(wait, 0.001))


def checks_for(scope: str, limits: Limits, prompt_tokens: int) -> list[Check]:
    """The windows a request of ``prompt_tokens`` must pass in ``scope``."""
    out: list[Check] = []
    if limits.rpm is not None:
        out.append(Check(f"{scope}:req:60", MINUTE, limits.rpm, 1, "Throttling.RateQuota"))
    if limits.burst_requests is not None:
        out.append(Check(f"{scope}:req:1", SECOND, limits.burst_requests, 1, "Throttling.BurstRate"))
    if limits.tpm is not None:
        out.append(Check(f"{scope}:tok:60", MINUTE, limits.tpm, prompt_tokens, "Throttling.AllocationQuota"))
    if limits.burst_tokens is not None:
        out.append(
            Check(
                f"{scope}:tok:1",
                SECOND,
                limits.burst_tokens,
                prompt_tokens,
                "Throttling.BurstRate",
                oversize=True,
            )
        )
    return out


def charges_for(scope: str, limits: Limits, tokens: int) -> list[Check]:
    """Output tokens added to the token windows of ``scope`` after the request."""
    out: list[Check] = []
    if tokens <= 0:
        return out
    if limits.tpm is not None:
        out.append(Check(f"{scope}:tok:60", MINUTE, None, tokens, "Throttling.AllocationQuota"))
    if limits.burst_tokens is not None:
        out.append(Check(f"{scope}:tok:1", SECOND, None, tokens, "Throttling.BurstRate"))
    return out


class RateLimiterUnavailable(Overloaded):
    """A shared limiter (Redis) could not be reached in time (HTTP 503 where limits fail closed).

    Raised by ``redis_limiter.RedisLimiter``; ``throttle.Throttle`` decides what it means for a
    request (see ``FailureMode``).
    """

    def __init__(self, message: str = "The rate limiter is unavailable, please try again later.") -> None:
        super().__init__(message)


FailureMode = Literal["local", "closed"]
"""What the rate windows do while a shared limiter is unreachable: ``local``, hold them in this
process's memory meanwhile (limits per process, as without Redis); ``closed``, refuse with 503."""
FAILURE_MODES: tuple[FailureMode, ...] = ("local", "closed")


class Limiter(Protocol):
    async def acquire(self, checks: Sequence[Check]) -> None:
        """Pass all checks and count them, or count none and raise ``RateLimited``.

        A limiter that cannot decide (its store is unreachable) raises ``RateLimiterUnavailable``.
        """

    async def add(self, charges: Sequence[Check]) -> None:
        """Count ``charges`` without checking (may raise ``RateLimiterUnavailable``)."""

    async def aclose(self) -> None: ...


class _Window:
    __slots__ = ("entries", "span", "total")

    def __init__(self, span: float) -> None:
        self.span = span
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def prune(self, now: float) -> None:
        cutoff = now - self.span
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            self.total -= entries.popleft()[1]

    def wait(self, now: float, need: int) -> float:
        """Seconds until ``need`` more fit (``need`` = how far over the limit we are)."""
        freed = 0
        for at, amount in self.entries:
            freed += amount
            if freed >= need:
                return at + self.span - now
        return self.span


class LocalLimiter:
    """Sliding windows in this process's memory (the default: one server process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._sweep = clock()

    def _window(self, check: Check) -> _Window:
        window = self._windows.get(check.window)
        if window is None:
            window = self._windows[check.window] = _Window(check.span)
        return window

    def try_acquire(self, checks: Sequence[Check]) -> None:
        now = self._clock()
        windows = [self._window(c) for c in checks]
        for check, window in zip(checks, windows, strict=True):
            window.prune(now)
            if check.limit is not None and (over := check.over(window.total)) > 0:
                raise rejection(check, window.wait(now, over))
        for check, window in zip(checks, windows, strict=True):
            if check.amount:
                window.entries.append((now, check.amount))
                window.total += check.amount
        if now - self._sweep > MINUTE:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        self._sweep = now
        for name, window in list(self._windows.items()):
            window.prune(now)
            if not window.entries:
                del self._windows[name]

    async def acquire(self, checks: Sequence[Check]) -> None:
        self.try_acquire(checks)

    async def add(self, charges: Sequence[Check]) -> None:
        self.try_acquire(charges)

    async def aclose(self) -> None:
        return None
