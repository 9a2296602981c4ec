"""Rate limits and concurrency caps at admission (imports core, platform).

Each request passes two scopes: its key (the key's own limits) and its key x model pair (the
model's ``[limits]`` table, or ``"*"``), as Model Studio limits each account and model. Prompt
tokens count at admission, output tokens once the request is recorded. Concurrency caps hold per
server process; RPM/TPM/RPS/TPS hold across processes when the limiter is Redis.

When Redis cannot be reached (``RateLimiterUnavailable``: refused, reset, or no answer within its
timeout), the rate windows follow the ``FailureMode``: ``local`` (the default) holds them in this
process meanwhile, as a server without Redis does; ``closed`` refuses the request with a 503. Either
way a warning is logged (at most every 10 s), the observer counts it, and every concurrency slot
taken is freed again: the caps are in-process and hold throughout. For ``RETRY_S`` after a failure
Redis is not asked again, so that an outage does not cost every request a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from thinkserve.core.errors import RateLimited
from thinkserve.platform.keys import ApiKey
from thinkserve.platform.limits import (
    Check,
    FailureMode,
    Limiter,
    Limits,
    LocalLimiter,
    RateLimiterUnavailable,
    charges_for,
    checks_for,
)
from thinkserve.platform.port import Admission, Principal

log = logging.getLogger(__name__)

_NO_LIMITS = Limits()
RETRY_S = 1.0
"""After a failure of the shared limiter, how long requests skip it (local or closed meanwhile)."""
_WARN_EVERY_S = 10.0


class Throttle:
    def __init__(
        self,
        limiter: Limiter,
        model_limits: Mapping[str, Limits],
        *,
        on_failure: FailureMode = "local",
        failed: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``failed(outcome)`` is told of each request the shared limiter failed: ``"local"`` or
        ``"refused"``."""
        self.limiter = limiter
        self._model_limits = model_limits
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_failure = on_failure
        self._failed = failed
        self._clock = clock
        self._fallback = LocalLimiter(clock)
        self._skip_until = float("-inf")
        self._warned = float("-inf")

    @property
    def in_flight(self) -> dict[str, int]:
        """Concurrency slots taken, by scope (a copy; empty when nothing is in flight)."""
        return dict(self._in_flight)

    async def admit(
        self, principal: Principal, key: ApiKey | None, model: str, prompt_tokens: int
    ) -> Admission:
        """Take a concurrency slot in both scopes and pass their windows, or raise ``RateLimited``
        (``RateLimiterUnavailable`` where limits fail closed and Redis is down), with no slot kept."""
        key_limits = key.limits if key is not None else _NO_LIMITS
        model_limits = self._limits_of(model)
        key_scope, pair_scope = f"key:{principal.key_id}", f"km:{principal.key_id}:{model}"
        slots = self._take([(key_scope, key_limits.concurrency), (pair_scope, model_limits.concurrency)])
        try:
            await self._acquire(
                checks_for(key_scope, key_limits, prompt_tokens)
                + checks_for(pair_scope, model_limits, prompt_tokens)
            )
        except BaseException:  # refused, Redis down, cancelled, anything: the slots go back
            self._free(slots)
            raise
        admission = Admission(principal, model, prompt_tokens=prompt_tokens)
        admission.on_release(lambda: self._free(slots))
        # Admission counted an estimate of the prompt; the rest counts as soon as it is tokenized.
        admission.top_ups.append(lambda extra: self.charge(principal.key_id, key, model, extra))
        return admission

    def charge(self, key_id: str, key: ApiKey | None, model: str, tokens: int) -> None:
        """Count tokens known after admission (output tokens; prompt tokens beyond the admission
        estimate) in the token windows (without waiting on Redis)."""
        charges = charges_for(f"key:{key_id}", key.limits if key else _NO_LIMITS, tokens)
        charges += charges_for(f"km:{key_id}:{model}", self._limits_of(model), tokens)
        if not charges:
            return
        if isinstance(self.limiter, LocalLimiter):
            self.limiter.try_acquire(charges)
        else:
            task = asyncio.get_running_loop().create_task(self._charge(charges))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.limiter.aclose()

    def _limits_of(self, model: str) -> Limits:
        limits = self._model_limits
        return limits.get(model) or limits.get("*") or _NO_LIMITS

    def _take(self, caps: list[tuple[str, int | None]]) -> list[str]:
        for scope, cap in caps:
            if cap is not None and self._in_flight.get(scope, 0) >= cap:
                raise RateLimited(
                    "Too many requests in flight for this API key, please try again later.", code="Throttling"
                )
        slots = [scope for scope, _ in caps]
        for scope in slots:
            self._in_flight[scope] = self._in_flight.get(scope, 0) + 1
        return slots

    def _free(self, slots: list[str]) -> None:
        for scope in slots:
            left = self._in_flight.get(scope, 0) - 1
            if left > 0:
                self._in_flight[scope] = left
            else:
                self._in_flight.pop(scope, None)

    async def _acquire(self, checks: list[Check]) -> None:
        if not checks:
            return
        if self._clock() < self._skip_until:
            self._unavailable(None)
            self._fallback.try_acquire(checks)
            return
        try:
            await self.limiter.acquire(checks)
        except RateLimiterUnavailable as error:
            self._skip_until = self._clock() + RETRY_S
            self._unavailable(error)
            self._fallback.try_acquire(checks)

    def _unavailable(self, error: RateLimiterUnavailable | None) -> None:
        """The shared limiter is down: count it, warn now and then, and refuse where limits fail closed."""
        closed = self._on_failure == "closed"
        if self._failed is not None:
            self._failed("refused" if closed else "local")
        now = self._clock()
        if error is not None and now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            cause = error.__cause__ or error
            log.warning(
                "the rate limiter (Redis) is unavailable (%s: %s); rate limits %s",
                type(cause).__name__,
                cause,
                "refuse requests with 503 meanwhile" if closed else "hold per process meanwhile",
            )
        if closed:
            raise error or RateLimiterUnavailable()

    async def _charge(self, charges: Sequence[Check]) -> None:
        try:
            if self._clock() < self._skip_until:
                raise RateLimiterUnavailable()
            await self.limiter.add(charges)
        except RateLimiterUnavailable:
            self._skip_until = max(self._skip_until, self._clock() + RETRY_S)
            if self._on_failure == "local":
                self._fallback.try_acquire(charges)
        except Exception:
            log.warning("counting output tokens in the rate limiter failed", exc_info=True)
