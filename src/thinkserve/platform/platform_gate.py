"""The real gate: stored keys, workspaces, rate limits, spending limits, metering and billing
(imports config, core, platform, monitor).

Decisions where the issue left a choice:

* Bootstrap keys (``THINKSERVE_API_KEYS`` / ``[server] api_keys``) are admin keys with no limits
  of their own, bound to no workspace: they are how an operator reaches the admin API before any
  key is created. The model limits of ``[limits]`` still apply to them.
* A key bound to a workspace works without ``X-DashScope-WorkSpace`` (its workspace is implied) and
  answers 403 ``Workspace.AccessDenied`` when the header names another one. An unbound key may name
  any workspace; it is recorded as given.
* Keys are looked up by digest and cached for ``key_ttl_s`` (5 s): a key revoked by another process
  (``thinkserve keys revoke``) stops working within that time; one revoked here, at once.
* The spending limit is checked at admission against what was billed so far (refreshed every
  ``key_ttl_s``): requests in flight when it is crossed finish, the next one gets ``Arrearage``.
* Concurrency caps hold per server process; RPM/TPM/RPS/TPS hold across processes with Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from thinkserve.config import Settings
from thinkserve.core.errors import Arrearage, InvalidApiKey, RateLimited, WorkspaceDenied
from thinkserve.monitor.metrics import Metrics
from thinkserve.platform import keys as keymod
from thinkserve.platform.database import database_url
from thinkserve.platform.gate import Admission, Principal, UsageRecord, parse_bearer
from thinkserve.platform.journal import Entry
from thinkserve.platform.keys import ApiKey
from thinkserve.platform.limits import Check, Limiter, Limits, LocalLimiter, charges_for, checks_for
from thinkserve.platform.store import Store
from thinkserve.platform.writer import UsageWriter

log = logging.getLogger(__name__)

_NO_LIMITS = Limits()


@dataclass(slots=True)
class HeldAdmission(Admission):
    """An admission holding concurrency slots until ``release``."""

    slots: list[str] = field(default_factory=list)
    gate: PlatformGate | None = None

    def release(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.free(self.model, self.slots)


class PlatformGate:
    """Implements ``platform.gate.Gate`` over a ``Store``, a ``Limiter`` and a ``UsageWriter``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        limiter: Limiter,
        *,
        metrics: Metrics | None = None,
        key_ttl_s: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self.settings = settings
        self.store = store
        self.limiter = limiter
        self.metrics = metrics or Metrics()
        self._ttl = key_ttl_s
        self._cache_size = cache_size
        self._bootstrap = [keymod.digest(k) for k in settings.api_keys]
        self._by_digest: OrderedDict[str, tuple[ApiKey | None, float]] = OrderedDict()
        self._by_id: dict[str, ApiKey] = {}
        self._spent: dict[str, tuple[int, float]] = {}
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.writer = UsageWriter(
            store, settings.data_dir / "journal", settings.prices, on_commit=self._committed
        )

    @classmethod
    async def start(cls, settings: Settings, *, metrics: Metrics | None = None) -> PlatformGate:
        """Open the store (migrating it), connect the limiter, replay journals, start the writer."""
        store = await Store.open(database_url(settings.database_url, settings.data_dir))
        limiter: Limiter
        if settings.redis_url:
            from thinkserve.platform.redis_limiter import RedisLimiter

            redis = RedisLimiter(settings.redis_url)
            await redis.ping()
            limiter = redis
        else:
            limiter = LocalLimiter()
        gate = cls(settings, store, limiter, metrics=metrics)
        await gate.writer.start()
        return gate

    async def aclose(self) -> None:
        await self.writer.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.limiter.aclose()
        await self.store.close()

    # -- Gate -----------------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal:
        token = parse_bearer(authorization)
        if token is None:
            raise InvalidApiKey("You didn't provide an API key. ")
        digest = keymod.digest(token)
        # compare_digest against every bootstrap key: the time taken does not tell which was close.
        matched = [i for i, d in enumerate(self._bootstrap) if keymod.same_digest(digest, d)]
        if matched:
            return Principal(
                key_id=f"bootstrap-{matched[0]}", name="bootstrap", workspace=workspace, admin=True
            )
        key = await self._key(digest)
        if key is None or not keymod.same_digest(key.digest, digest) or key.revoked_at is not None:
            raise InvalidApiKey()
        if key.workspace is not None:
            if workspace is not None and workspace != key.workspace:
                raise WorkspaceDenied(f"The API key has no access to workspace {workspace!r}.")
            workspace = key.workspace
        return Principal(key_id=key.id, name=key.name, workspace=workspace, admin=key.admin)

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission:
        key = self._by_id.get(principal.key_id)
        key_limits = key.limits if key is not None else _NO_LIMITS
        model_limits = self._model_limits(model)
        if key is not None and key.spend_limit_nano is not None:
            if await self._spent_of(key.id) >= key.spend_limit_nano:
                self.metrics.rejected.labels(model, "Arrearage").inc()
                raise Arrearage()
        key_scope, pair_scope = f"key:{principal.key_id}", f"km:{principal.key_id}:{model}"
        slots = self._take(
            model, [(key_scope, key_limits.concurrency), (pair_scope, model_limits.concurrency)]
        )
        try:
            await self.limiter.acquire(
                checks_for(key_scope, key_limits, prompt_tokens)
                + checks_for(pair_scope, model_limits, prompt_tokens)
            )
        except RateLimited as error:
            self.free(model, slots)
            self.metrics.rejected.labels(model, error.code).inc()
            raise
        return HeldAdmission(principal, model, slots=slots, gate=self)

    async def record(self, record: UsageRecord) -> None:
        # Synchronous up to the journal write: safe even if the caller's task is being cancelled.
        principal, u = record.principal, record.usage
        self.writer.submit(
            Entry(
                id=uuid.uuid4().hex,
                key_id=principal.key_id,
                workspace=principal.workspace,
                model=record.model,
                thinking=record.thinking,
                status=record.status,
                input_tokens=u.prompt_tokens,
                cached_tokens=u.cached_tokens,
                output_tokens=u.completion_tokens,
                reasoning_tokens=u.reasoning_tokens,
                ttft_ms=None if record.ttft_s is None else record.ttft_s * 1000,
                duration_ms=record.duration_s * 1000,
                at=record.finished_at,
            )
        )
        self.metrics.observe(record)
        self.metrics.usage_backlog.set(self.writer.backlog)
        key = self._by_id.get(principal.key_id)
        charges = charges_for(
            f"key:{principal.key_id}", key.limits if key else _NO_LIMITS, u.completion_tokens
        )
        charges += charges_for(
            f"km:{principal.key_id}:{record.model}", self._model_limits(record.model), u.completion_tokens
        )
        if not charges:
            return
        if isinstance(self.limiter, LocalLimiter):
            self.limiter.try_acquire(charges)
        else:
            task = asyncio.get_running_loop().create_task(self._charge(charges))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- admin ----------------------------------------------------------------------------------

    async def create_key(self, key: ApiKey) -> None:
        await self.store.add_key(key)

    async def revoke(self, key_id: str) -> bool:
        done = await self.store.revoke(key_id, time.time())
        # Forget every cached key: the next request of a revoked key finds it revoked.
        self._by_digest.clear()
        return done

    async def flush(self) -> None:
        """Wait until every usage record so far is in SQL."""
        await self.writer.flush()

    # -- internals ------------------------------------------------------------------------------

    def _model_limits(self, model: str) -> Limits:
        limits = self.settings.limits
        return limits.get(model) or limits.get("*") or _NO_LIMITS

    async def _key(self, digest: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._by_digest.get(digest)
        if hit is not None and hit[1] > now:
            self._by_digest.move_to_end(digest)
            return hit[0]
        key = await self.store.key_by_digest(digest)
        self._by_digest[digest] = (key, now + self._ttl)
        self._by_digest.move_to_end(digest)
        while len(self._by_digest) > self._cache_size:
            self._by_digest.popitem(last=False)
        if key is not None:
            self._by_id[key.id] = key
        return key

    async def _spent_of(self, key_id: str) -> int:
        now = time.monotonic()
        hit = self._spent.get(key_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        spent = (await self.store.spent([key_id])).get(key_id, 0)
        self._spent[key_id] = (spent, now + self._ttl)
        return spent

    def _committed(self, added: dict[str, int]) -> None:
        for key_id, nano in added.items():
            hit = self._spent.get(key_id)
            if hit is not None:
                self._spent[key_id] = (hit[0] + nano, hit[1])
        self.metrics.usage_backlog.set(self.writer.backlog)

    def _take(self, model: str, caps: list[tuple[str, int | None]]) -> list[str]:
        for scope, cap in caps:
            if cap is not None and self._in_flight.get(scope, 0) >= cap:
                self.metrics.rejected.labels(model, "Throttling").inc()
                raise RateLimited(
                    "Too many requests in flight for this API key, please try again later.", code="Throttling"
                )
        slots = [scope for scope, _ in caps]
        for scope in slots:
            self._in_flight[scope] = self._in_flight.get(scope, 0) + 1
        self.metrics.in_flight.labels(model).inc()
        return slots

    def free(self, model: str, slots: list[str]) -> None:
        for scope in slots:
            left = self._in_flight.get(scope, 0) - 1
            if left > 0:
                self._in_flight[scope] = left
            else:
                self._in_flight.pop(scope, None)
        self.metrics.in_flight.labels(model).dec()

    async def _charge(self, charges: list[Check]) -> None:
        try:
            await self.limiter.add(charges)
        except Exception:
            log.warning("counting output tokens in the rate limiter failed", exc_info=True)
