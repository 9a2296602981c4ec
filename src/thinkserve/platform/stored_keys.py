"""The stored-keys gate: keys, limits and usage in SQL; what ``thinkserve serve`` runs (imports core,
platform).

It puts together, one module each: who is calling (``key_cache``), the spending limit (``spend``),
rate limits and concurrency (``throttle``), the usage journal and its SQL writer
(``usage_writer``), and the admin operations over the store (``administration``). The bootstrap
keys' requests pass the model limits of ``[limits]`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Collection
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from thinkserve.core.errors import ThinkserveError
from thinkserve.platform import keys
from thinkserve.platform.administration import OutOfScope, check_scope, keys_with_spend
from thinkserve.platform.database import database_url
from thinkserve.platform.key_cache import KeyCache
from thinkserve.platform.keys import ApiKey
from thinkserve.platform.limits import Limiter, LocalLimiter
from thinkserve.platform.metering import MeteringObserver, UsageRecord
from thinkserve.platform.port import Administration, Admission, Principal
from thinkserve.platform.report import Hourly, hourly
from thinkserve.platform.settings import PlatformSettings
from thinkserve.platform.spend import SpendLimits
from thinkserve.platform.store import Store, StoreUnavailable
from thinkserve.platform.throttle import Throttle
from thinkserve.platform.usage_writer import UsageWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoredKeys:
    """Implements ``port.Gate`` and ``port.Administration`` over a ``Store`` and a ``Limiter``."""

    def __init__(
        self,
        settings: PlatformSettings,
        store: Store,
        limiter: Limiter,
        *,
        observer: MeteringObserver | None = None,
        key_ttl_s: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self.store = store
        self._observer = observer
        self._keys = KeyCache(store, settings.bootstrap_keys, ttl_s=key_ttl_s, size=cache_size)
        self._spend = SpendLimits(store, ttl_s=key_ttl_s)
        self._throttle = Throttle(
            limiter,
            settings.limits,
            on_failure=settings.redis_failure,
            failed=None if observer is None else observer.rate_limiter_failed,
        )
        self.writer = UsageWriter(
            store,
            settings.journal_dir,
            settings.prices,
            on_commit=self._committed,
            on_poison=self._poisoned,
            on_journal_failure=self._journal_failed,
        )

    @classmethod
    async def start(
        cls, settings: PlatformSettings, *, observer: MeteringObserver | None = None
    ) -> StoredKeys:
        """Open the store (migrating it), connect the limiter, replay journals, start the writer."""
        store = await Store.open(
            database_url(settings.database_url, settings.data_dir),
            connect_timeout_s=settings.database_connect_timeout_s,
            command_timeout_s=settings.database_command_timeout_s,
        )
        if settings.first_key is not None:
            await _ensure_first_key(store, settings.first_key)
        limiter: Limiter
        if settings.redis_url:
            from thinkserve.platform.redis_limiter import RedisLimiter

            redis = RedisLimiter(settings.redis_url, timeout_s=settings.redis_timeout_s)
            await redis.ping()
            limiter = redis
        else:
            limiter = LocalLimiter()
        gate = cls(settings, store, limiter, observer=observer)
        await gate.writer.start()
        return gate

    async def aclose(self) -> None:
        await self.writer.close()
        await self._throttle.aclose()
        await self.store.close()

    # -- Gate -----------------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal:
        return await self._keys.authenticate(authorization, workspace)

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission:
        key = self._keys.by_id(principal.key_id)
        await self._spend.check(key)
        return await self._throttle.admit(principal, key, model, prompt_tokens)

    async def record(self, record: UsageRecord) -> None:
        # Synchronous up to the journal write: safe even if the caller's task is being cancelled.
        # ``submit`` never raises; the rest is bookkeeping that must not fail a finished request.
        self.writer.submit(record)
        try:
            self._report_backlog()
            key_id = record.key_id
            self._throttle.charge(key_id, self._keys.by_id(key_id), record.model, record.output_tokens)
        except Exception:
            log.exception("charging usage record %s to the rate windows failed", record.id)

    def administration(self) -> Administration:
        return self

    @property
    def in_flight(self) -> dict[str, int]:
        """Concurrency slots taken, by scope (empty when nothing is in flight)."""
        return self._throttle.in_flight

    # -- Administration -------------------------------------------------------------------------

    async def create_key(self, key: ApiKey, *, scope: str | None = None) -> None:
        check_scope(key, scope)
        await _reached(self.store.add_key(key))

    async def revoke(self, key_id: str, *, scope: str | None = None) -> str | None:
        done = await _reached(self.store.revoke(key_id, time.time(), scope=scope))
        self._keys.forget()
        return done

    async def list_keys(self, *, scope: str | None = None) -> list[tuple[ApiKey, int]]:
        return await _reached(keys_with_spend(self.store, scope=scope))

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
        # Show the requests that just finished; a store that is down must not hang the report.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.flush()
        report = hourly(
            self.store, since, until, model=model, key_id=key_id, by=by, scope=scope, workspace=workspace
        )
        return await _reached(report)

    async def flush(self) -> None:
        """Wait until every usage record so far is in SQL."""
        await self.writer.flush()

    def _committed(self, added: dict[str, int]) -> None:
        self._spend.committed(added)
        self._report_backlog()

    def _poisoned(self, records: int) -> None:
        if self._observer is not None:
            self._observer.usage_poisoned(records)

    def _journal_failed(self, stage: str) -> None:
        if self._observer is not None:
            self._observer.journal_failed(stage)

    def _report_backlog(self) -> None:
        if self._observer is not None:
            self._observer.backlog(self.writer.backlog)


async def _ensure_first_key(store: Store, secret: str) -> None:
    """Store the first-run key as a normal key named ``first``, once (another process may race us)."""
    if await store.key_by_digest(keys.digest(secret)) is not None:
        return
    try:
        await store.add_key(keys.from_secret(secret, "first"))
    except Exception:
        if await store.key_by_digest(keys.digest(secret)) is None:
            raise


async def _reached(work: Awaitable[T]) -> T:
    """``work``'s result; a database that cannot be reached is a 503 ``StoreUnavailable`` (the
    driver's own error, whatever it is, is logged), not a 500. Answers about the request itself
    (a bad argument, an ambiguous key, a duplicate) pass through."""
    try:
        return await work
    except (ThinkserveError, ValueError, LookupError, OutOfScope, IntegrityError):
        raise
    except Exception as error:
        log.warning("the key and usage store is unreachable: %s", error)
        raise StoreUnavailable() from error
