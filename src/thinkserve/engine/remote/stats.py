"""Per-upstream counters and their snapshot for the metrics (pure).

``monitor.upstreams`` reads ``UpstreamStats`` at every scrape; nothing here knows Prometheus.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds: upper bounds of the latency histograms (``+Inf`` is implied)."""


class Histogram:
    """Fixed-bucket counts of observations, as Prometheus histograms expose them."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """``[("0.005", n), ..., ("+Inf", n_all)]``."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


@dataclass(slots=True)
class UpstreamCounters:
    """What one upstream has done since the engine started (mutated on the event loop)."""

    requests: dict[str, int] = field(default_factory=dict)
    """Requests by outcome: ``ok``, ``failed``, ``cancelled``."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failures by kind: ``connect``, ``timeout``, ``status``, ``stream``, ``protocol``, ``busy``."""
    ejections: int = 0
    returns: int = 0
    failovers: int = 0
    """Requests that failed here before their first token and went on elsewhere."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    first_token: Histogram = field(default_factory=Histogram)
    """Request sent to first token id received."""
    duration: Histogram = field(default_factory=Histogram)
    """Request sent to the end of its stream."""

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


@dataclass(frozen=True, slots=True)
class UpstreamStats:
    """One upstream as the metrics see it."""

    url: str
    protocol: str
    up: bool
    state: str
    """``up``, ``ejected`` or ``unknown`` (never reached yet)."""
    reason: str
    in_flight: int
    weight: float
    counters: UpstreamCounters
