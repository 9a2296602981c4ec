"""Hourly usage: what ``thinkserve usage`` and ``GET /admin/v1/usage`` show (imports platform).

One row per hour and model (and per key, workspace or mode when asked), as a JSON object::

    {"hour": "2025-11-25T21:00:00Z", "model": "qwen-plus", "calls": 12, "errors": 0,
     "cancelled": 1, "input_tokens": 420, "cached_tokens": 128, "output_tokens": 3100,
     "reasoning_tokens": 2400, "cost": "0.0252", "latency_ms": {"p50": 812.0, "p95": 1903.5},
     "ttft_ms": {"p50": 35.1, "p95": 80.2}}

With ``by=key``, ``by=workspace`` or ``by=mode`` the rows also carry ``"key"``, ``"workspace"``
or ``"mode"`` (``"thinking"`` / ``"non-thinking"``). Latency percentiles are nearest-rank.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from thinkserve.platform.billing import to_money
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.store import Store

GROUPS = ("key", "workspace", "mode")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(slots=True)
class Hourly:
    hour: int
    model: str
    group: dict[str, str | None] = field(default_factory=dict)
    calls: int = 0
    errors: int = 0
    cancelled: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nano: int = 0
    search_calls: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "hour": datetime.fromtimestamp(self.hour, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": self.model,
            **self.group,
            "calls": self.calls,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "input_tokens": self.input_tokens,
            "cached_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "search_calls": self.search_calls,
            "cost": str(to_money(self.cost_nano)),
            "latency_ms": {"p50": percentile(self.latencies, 50), "p95": percentile(self.latencies, 95)},
            "ttft_ms": {"p50": percentile(self.ttfts, 50), "p95": percentile(self.ttfts, 95)},
        }


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``values`` is sorted in place); None when empty."""
    if not values:
        return None
    values.sort()
    return round(values[max(0, math.ceil(p / 100 * len(values)) - 1)], 3)


def _group_of(row: UsageRecord, by: Collection[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    if "key" in by:
        out["key"] = row.key_id
    if "workspace" in by:
        out["workspace"] = row.workspace
    if "mode" in by:
        out["mode"] = "thinking" if row.thinking else "non-thinking"
    return out


def aggregate(rows: Iterable[UsageRecord], by: Collection[str] = ()) -> list[Hourly]:
    """Rows -> one ``Hourly`` per hour, model and requested group, sorted by hour then model."""
    unknown = set(by) - set(GROUPS)
    if unknown:
        raise ValueError(f"cannot group by {sorted(unknown)}; choose from {list(GROUPS)}")
    out: dict[tuple[Any, ...], Hourly] = {}
    for row in rows:
        group = _group_of(row, by)
        slot = (row.hour, row.model, *group.values())
        h = out.get(slot)
        if h is None:
            h = out[slot] = Hourly(row.hour, row.model, group)
        h.calls += 1
        h.errors += row.status == "error"
        h.cancelled += row.status == "cancelled"
        h.input_tokens += row.input_tokens
        h.cached_tokens += row.cached_tokens
        h.output_tokens += row.output_tokens
        h.reasoning_tokens += row.reasoning_tokens
        h.cost_nano += row.cost_nano
        h.search_calls += row.search_calls
        h.latencies.append(row.duration_ms)
        if row.ttft_ms is not None:
            h.ttfts.append(row.ttft_ms)
    return sorted(out.values(), key=lambda h: (h.hour, h.model, *(v or "" for v in h.group.values())))


async def hourly(
    store: Store,
    since: float,
    until: float | None = None,
    *,
    model: str | None = None,
    key_id: str | None = None,
    by: Collection[str] = (),
    scope: str | None = None,
    workspace: str | None = None,
) -> list[Hourly]:
    """``scope``: only the usage of keys bound to that workspace (None: everything);
    ``workspace``: only the usage recorded under that workspace (a filter, not a right)."""
    rows = await store.rows(since, until, model=model, key_id=key_id, scope=scope, workspace=workspace)
    return aggregate(rows, by)


# The times a query may name: from the Unix epoch to the last second of year 9999, the range of
# a datetime and far inside the store's integer and float columns.
LATEST = 253402300799.0


def parse_time(text: str, now: float | None = None) -> float:
    """``24h`` / ``90m`` / ``7d`` (ago), an ISO 8601 date or time (UTC unless it says), or Unix seconds.

    Raises ``ValueError`` for anything else, and for a time outside ``[0, LATEST]`` (``1e30``,
    ``-1e30``, ``nan``, ``inf``...).
    """
    when = _parse_time(text, now)
    if not 0.0 <= when <= LATEST:  # also false for NaN
        raise ValueError(
            f"time out of range: {_shown(text)} (from 1970-01-01 to 9999-12-31, "
            f"or Unix seconds in [0, {LATEST:.0f}])"
        )
    return when


def _parse_time(text: str, now: float | None) -> float:
    now = time.time() if now is None else now
    text = text.strip()
    if m := _RELATIVE.match(text):
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"not a time: {_shown(text)} (use 24h, 7d, 2025-11-25T08:00, or Unix seconds)"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _shown(text: str) -> str:
    """``text`` as an error message quotes it: at most 40 characters of it."""
    text = text.strip()
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"
