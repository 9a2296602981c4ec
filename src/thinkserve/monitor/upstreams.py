"""Per-upstream metrics of remote engines, read at scrape time (imports engine.protocol,
engine.remote.stats).

Any engine with an ``upstream_stats()`` method (``engine.remote.engine.RemoteEngine``) is
reported, one series per upstream URL::

    thinkserve_upstream_up{engine="default",upstream="http://10.0.0.5:8000"} 1.0
    thinkserve_upstream_in_flight{engine="default",upstream="http://10.0.0.5:8000"} 3.0
    thinkserve_upstream_requests_total{engine="default",outcome="ok",upstream="..."} 120.0
    thinkserve_upstream_errors_total{engine="default",kind="connect",upstream="..."} 2.0
    thinkserve_upstream_ejections_total{engine="default",upstream="..."} 1.0
    thinkserve_upstream_first_token_seconds_bucket{engine="default",le="0.05",upstream="..."} 97.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from thinkserve.engine.protocol import Engine
from thinkserve.engine.remote.stats import UpstreamStats


@runtime_checkable
class HasUpstreams(Protocol):
    def upstream_stats(self) -> Sequence[UpstreamStats]: ...


class UpstreamCollector(Collector):
    def __init__(self, source: Callable[[], Mapping[str, Engine]]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        labels = ["engine", "upstream"]
        up = GaugeMetricFamily(
            "thinkserve_upstream_up", "1 while the upstream takes requests.", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "thinkserve_upstream_in_flight", "Completions running at the upstream.", labels=labels
        )
        weight = GaugeMetricFamily(
            "thinkserve_upstream_weight", "The upstream's routing weight.", labels=labels
        )
        requests = CounterMetricFamily(
            "thinkserve_upstream_requests",
            "Completions sent to the upstream, by outcome (ok, failed, cancelled).",
            labels=[*labels, "outcome"],
        )
        errors = CounterMetricFamily(
            "thinkserve_upstream_errors",
            "Failed completions by kind (connect, timeout, stream, status, protocol, busy, rejected).",
            labels=[*labels, "kind"],
        )
        ejections = CounterMetricFamily(
            "thinkserve_upstream_ejections", "Times the upstream was taken out of the pool.", labels=labels
        )
        returns = CounterMetricFamily(
            "thinkserve_upstream_returns", "Times an ejected upstream came back.", labels=labels
        )
        failovers = CounterMetricFamily(
            "thinkserve_upstream_failovers",
            "Requests that failed at the upstream before their first token and went to another.",
            labels=labels,
        )
        cached = CounterMetricFamily(
            "thinkserve_upstream_cached_tokens",
            "Prompt tokens the upstream reported as taken from its prefix cache.",
            labels=labels,
        )
        first = HistogramMetricFamily(
            "thinkserve_upstream_first_token_seconds",
            "Completion sent to first token id back.",
            labels=labels,
        )
        duration = HistogramMetricFamily(
            "thinkserve_upstream_duration_seconds", "Completion sent to the end of its stream.", labels=labels
        )
        for name, engine in self._source().items():
            if not isinstance(engine, HasUpstreams):
                continue
            for stats in engine.upstream_stats():
                key = [name, stats.url]
                c = stats.counters
                up.add_metric(key, 1.0 if stats.up else 0.0)
                in_flight.add_metric(key, float(stats.in_flight))
                weight.add_metric(key, stats.weight)
                for outcome, n in c.requests.items():
                    requests.add_metric([*key, outcome], float(n))
                for kind, n in c.errors.items():
                    errors.add_metric([*key, kind], float(n))
                ejections.add_metric(key, float(c.ejections))
                returns.add_metric(key, float(c.returns))
                failovers.add_metric(key, float(c.failovers))
                cached.add_metric(key, float(c.cached_tokens))
                first.add_metric(key, c.first_token.cumulative(), c.first_token.total)
                duration.add_metric(key, c.duration.cumulative(), c.duration.total)
        yield from (
            up,
            in_flight,
            weight,
            requests,
            errors,
            ejections,
            returns,
            failovers,
            cached,
            first,
            duration,
        )
