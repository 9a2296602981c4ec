"""The platform's SQL store: keys, usage records, per-key totals (imports platform modules).

Usage is written in batches; each batch is one transaction that also bills it: free quota is taken
from ``key_totals`` under a row lock (PostgreSQL) or SQLite's write lock, so that several server
processes sharing the database never give the same free tokens twice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from thinkserve.core.errors import Overloaded
from thinkserve.platform import database
from thinkserve.platform.billing import Price, after_free_quota, charge, search_cost
from thinkserve.platform.keys import AmbiguousKey, ApiKey
from thinkserve.platform.limits import Limits
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.schema import api_keys, key_totals, usage


class StoreUnavailable(Overloaded):
    """The database could not be reached in time and nothing cached could answer (HTTP 503)."""

    def __init__(
        self, message: str = "The key and usage store is unavailable, please try again later."
    ) -> None:
        super().__init__(message)


def _key_values(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "digest": key.digest,
        "prefix": key.prefix,
        "workspace": key.workspace,
        "admin": key.admin,
        "rpm": key.limits.rpm,
        "tpm": key.limits.tpm,
        "rps": key.limits.rps,
        "tps": key.limits.tps,
        "concurrency": key.limits.concurrency,
        "quota_tokens": key.quota_tokens,
        "spend_limit_nano": key.spend_limit_nano,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _key_of(row: Row[Any]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=m["id"],
        name=m["name"],
        digest=m["digest"],
        prefix=m["prefix"],
        workspace=m["workspace"],
        admin=bool(m["admin"]),
        limits=Limits(m["rpm"], m["tpm"], m["rps"], m["tps"], m["concurrency"]),
        quota_tokens=m["quota_tokens"],
        spend_limit_nano=m["spend_limit_nano"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def _insert_ignore(conn: AsyncConnection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        connect_timeout_s: float = database.CONNECT_TIMEOUT_S,
        command_timeout_s: float = database.COMMAND_TIMEOUT_S,
    ) -> Store:
        """Connect to an async URL (see ``database.database_url``) and apply pending migrations."""
        engine = database.make_engine(
            url, connect_timeout_s=connect_timeout_s, command_timeout_s=command_timeout_s
        )
        if migrate:
            await database.upgrade(engine)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        """Whether the database answers a trivial query (within the engine's timeouts)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
        except Exception:  # whatever the driver raises, the answer is "no"
            return False
        return True

    # -- keys -----------------------------------------------------------------------------------

    async def add_key(self, key: ApiKey) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(api_keys.insert().values(**_key_values(key)))

    async def keys(self, *, include_revoked: bool = True, scope: str | None = None) -> list[ApiKey]:
        """Keys in creation order; ``scope``: only the keys bound to that workspace (None: all)."""
        query = select(api_keys).order_by(api_keys.c.created_at)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        if scope is not None:
            query = query.where(api_keys.c.workspace == scope)
        async with self.engine.connect() as conn:
            return [_key_of(row) for row in await conn.execute(query)]

    async def key_by_digest(self, digest: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.digest == digest))).first()
        return None if row is None else _key_of(row)

    async def revoke(self, key_id: str, at: float, *, scope: str | None = None) -> str | None:
        """Revoke exactly one active key, by id (``key_…``) or by shown prefix (``sk-3f2a``); returns
        its id, None when no active key (of workspace ``scope``, when given) matched.

        Raises ``AmbiguousKey`` when the prefix matches several active keys: a shown prefix is 7
        characters of the secret and may repeat, and revoking must never hit keys nobody named.
        """
        c = api_keys.c
        query = select(c.id).where((c.id == key_id) | (c.prefix == key_id), c.revoked_at.is_(None))
        if scope is not None:
            query = query.where(c.workspace == scope)
        async with self.engine.begin() as conn:
            found = sorted((await conn.execute(query)).scalars())
            if key_id in found:  # an id names its key, whatever prefixes look like it
                found = [key_id]
            if len(found) > 1:
                raise AmbiguousKey(key_id, found)
            if not found:
                return None
            done = await conn.execute(
                api_keys.update().where(c.id == found[0], c.revoked_at.is_(None)).values(revoked_at=at)
            )
        return found[0] if done.rowcount else None

    async def spent(self, key_ids: Collection[str]) -> dict[str, int]:
        """Billed nano-units per key, over all models."""
        query = (
            select(key_totals.c.key_id, func.sum(key_totals.c.cost_nano))
            .where(key_totals.c.key_id.in_(list(key_ids)))
            .group_by(key_totals.c.key_id)
        )
        async with self.engine.connect() as conn:
            return {k: int(v or 0) for k, v in await conn.execute(query)}

    # -- usage ----------------------------------------------------------------------------------

    async def write(
        self, records: Sequence[UsageRecord], prices: Mapping[str, Price], *, check_stored: bool = True
    ) -> dict[str, int]:
        """Store and bill ``records``, skipping ids already stored (``check_stored=False``: the
        caller knows none is, as for fresh records); returns the cost added per key."""
        if not records:
            return {}
        pairs = sorted({(r.key_id, r.model) for r in records})
        async with self.engine.begin() as conn:
            # A write first: SQLite then holds its write lock for the whole transaction.
            await conn.execute(
                _insert_ignore(conn, key_totals),
                [{"key_id": k, "model": m, "calls": 0, "tokens": 0, "cost_nano": 0} for k, m in pairs],
            )
            fresh = list(records)
            if check_stored:
                ids = [r.id for r in records]
                stored = set((await conn.execute(select(usage.c.id).where(usage.c.id.in_(ids)))).scalars())
                fresh = [r for r in records if r.id not in stored]
                if not fresh:
                    return {}
            totals_query = (
                select(key_totals.c.key_id, key_totals.c.model, key_totals.c.tokens)
                .where(tuple_(key_totals.c.key_id, key_totals.c.model).in_(pairs))
                .with_for_update()
            )
            used = {(k, m): int(t) for k, m, t in await conn.execute(totals_query)}
            quota_query = select(api_keys.c.id, api_keys.c.quota_tokens).where(
                api_keys.c.id.in_({k for k, _ in pairs})
            )
            quotas = {k: q for k, q in await conn.execute(quota_query)}
            rows, added = _bill(fresh, prices, used, quotas)
            await conn.execute(usage.insert(), rows)
            await conn.execute(
                key_totals.update()
                .where(key_totals.c.key_id == bindparam("k"), key_totals.c.model == bindparam("m"))
                .values(
                    calls=key_totals.c.calls + bindparam("n"),
                    tokens=key_totals.c.tokens + bindparam("t"),
                    cost_nano=key_totals.c.cost_nano + bindparam("c"),
                ),
                [{"k": k, "m": m, "n": n, "t": t, "c": c} for (k, m), (n, t, c) in added.items()],
            )
        per_key: dict[str, int] = {}
        for (k, _), (_, _, c) in added.items():
            per_key[k] = per_key.get(k, 0) + c
        return per_key

    async def rows(
        self,
        since: float,
        until: float | None = None,
        *,
        model: str | None = None,
        key_id: str | None = None,
        scope: str | None = None,
        workspace: str | None = None,
    ) -> list[UsageRecord]:
        """Records of the hours from ``since``'s hour up to (excluding) ``until``, billed;
        ``scope``: only the records of keys bound to that workspace (None: all); ``workspace``: only
        the records made under that workspace (the rows ``by=workspace`` would label with it)."""
        c = usage.c
        query = select(
            c.id,
            c.key_id,
            c.workspace,
            c.model,
            c.thinking,
            c.status,
            c.input_tokens,
            c.cached_tokens,
            c.output_tokens,
            c.reasoning_tokens,
            c.ttft_ms,
            c.duration_ms,
            c.finished_at.label("at"),
            c.cost_nano,
            c.search_calls,
        ).where(c.hour >= int(since // 3600 * 3600))
        if until is not None:
            query = query.where(c.finished_at < until)
        if model is not None:
            query = query.where(c.model == model)
        if key_id is not None:
            query = query.where(c.key_id == key_id)
        if workspace is not None:
            query = query.where(c.workspace == workspace)
        if scope is not None:
            # By the key that made it, not the record's workspace column: records that unbound keys
            # made while naming a workspace (before they could not) do not belong to it.
            bound = select(api_keys.c.id).where(api_keys.c.workspace == scope)
            query = query.where(c.key_id.in_(bound))
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(c.hour, c.model))
            return [UsageRecord(**row._mapping) for row in rows]


def _bill(
    records: Sequence[UsageRecord],
    prices: Mapping[str, Price],
    used: dict[tuple[str, str], int],
    quotas: Mapping[str, int | None],
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], tuple[int, int, int]]]:
    """Usage rows and, per (key, model), (calls, tokens, billed nano) to add to the totals."""
    rows: list[dict[str, Any]] = []
    added: dict[tuple[str, str], tuple[int, int, int]] = {}
    for e in sorted(records, key=lambda r: r.at):
        pair = (e.key_id, e.model)
        listed = charge(
            prices.get(e.model),
            thinking=e.thinking,
            input_tokens=e.input_tokens,
            cached_tokens=e.cached_tokens,
            output_tokens=e.output_tokens,
            reasoning_tokens=e.reasoning_tokens,
        )
        tokens = e.input_tokens + e.output_tokens
        quota = quotas.get(e.key_id)
        free_left = 0 if quota is None else quota - used.get(pair, 0)
        billed, free = after_free_quota(listed.cost_nano, tokens, free_left)
        # Search calls are billed per call, outside the free token quota.
        billed += search_cost(prices.get(e.model), e.search_calls)
        used[pair] = used.get(pair, 0) + tokens
        n, t, c = added.get(pair, (0, 0, 0))
        added[pair] = (n + 1, t + tokens, c + billed)
        rows.append(
            {
                "id": e.id,
                "key_id": e.key_id,
                "workspace": e.workspace,
                "model": e.model,
                "thinking": e.thinking,
                "billed_thinking": listed.thinking_price,
                "status": e.status,
                "input_tokens": e.input_tokens,
                "cached_tokens": e.cached_tokens,
                "output_tokens": e.output_tokens,
                "reasoning_tokens": e.reasoning_tokens,
                "free_tokens": free,
                "cost_nano": billed,
                "ttft_ms": e.ttft_ms,
                "duration_ms": e.duration_ms,
                "finished_at": e.at,
                "hour": e.hour,
                "search_calls": e.search_calls,
            }
        )
    return rows, added
