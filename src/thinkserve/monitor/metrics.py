"""Prometheus metrics, one registry per app (imports core, engine.protocol, monitor).

Request metrics are fed by platform metering whichever gate runs (the methods of
``platform.metering.MeteringObserver``, called by ``ObservedGate``); engine gauges are read
at scrape time from ``monitor.engine_figures`` (each engine's ``health()`` and ``snapshot()``; the
KV gauges only for engines with a KV cache), as ``GET /admin/v1/engines`` reads them.
Served at ``GET /metrics`` in the text format::

    thinkserve_requests_total{mode="thinking",model="qwen-plus",status="ok"} 12.0
    thinkserve_tokens_total{kind="reasoning",model="qwen-plus"} 310.0
    thinkserve_engine_queue_depth{engine="default"} 0.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from thinkserve.core.types import Usage
from thinkserve.engine.protocol import Engine
from thinkserve.monitor.engine_figures import engine_figures
from thinkserve.monitor.upstreams import UpstreamCollector

_LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_PER_TOKEN = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)

EngineSource = Callable[[], Mapping[str, Engine]]
"""Engine name -> engine, read at each scrape."""
LineSource = Callable[[str], int]
"""Engine name -> requests waiting in the gateway's fair line for it (``service.fair``)."""


@dataclass(slots=True)
class _Finished:
    """One model's series of finished requests, looked up once: ``labels()`` takes a lock and
    checks its arguments on every call, which was a tenth of a request's fixed cost. Each series
    is still created when first used, as ``labels()`` would."""

    input: Counter
    cached: Counter
    output: Counter
    reasoning: Counter
    duration: Histogram
    ttft: Histogram | None = None
    per_token: Histogram | None = None


class Metrics:
    """The app's metrics; nothing is module-level, so several apps in one process don't mix."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "thinkserve_requests", "Requests finished, by outcome.", ["model", "status", "mode"], registry=r
        )
        self.tokens = Counter(
            "thinkserve_tokens",
            "Tokens by kind: input, cached (part of input), output, reasoning (part of output).",
            ["model", "kind"],
            registry=r,
        )
        self.rejected = Counter(
            "thinkserve_rejected",
            "Requests refused by the platform, by error code.",
            ["model", "code"],
            registry=r,
        )
        self.ttft = Histogram(
            "thinkserve_time_to_first_token_seconds",
            "Admission to first token.",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.per_token = Histogram(
            "thinkserve_time_per_output_token_seconds",
            "Mean gap between output tokens of a request.",
            ["model"],
            buckets=_PER_TOKEN,
            registry=r,
        )
        self.duration = Histogram(
            "thinkserve_request_duration_seconds",
            "Admission to the end of the stream.",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.in_flight = Gauge(
            "thinkserve_requests_in_flight", "Admitted, not yet finished.", ["model"], registry=r
        )
        self.usage_backlog = Gauge(
            "thinkserve_usage_backlog", "Usage records journaled and not yet in SQL.", registry=r
        )
        self.limiter_failures = Counter(
            "thinkserve_rate_limiter_failures",
            "Requests whose rate limits Redis could not decide: limited in process (local) or refused (503).",
            ["outcome"],
            registry=r,
        )
        self.usage_poison = Counter(
            "thinkserve_usage_dead_letters",
            "Usage records the store refused, set aside in the dead-letter file.",
            registry=r,
        )
        self.journal_failures = Counter(
            "thinkserve_usage_journal_failures",
            "Usage journal writes or fsyncs that failed (the records stay in memory).",
            ["stage"],
            registry=r,
        )
        self._in_flight: dict[str, Gauge] = {}
        self._finished: dict[str, _Finished] = {}
        self._outcomes: dict[tuple[str, str, bool], Counter] = {}

    def admitted(self, model: str) -> None:
        self._gauge(model).inc()

    def released(self, model: str) -> None:
        self._gauge(model).dec()

    def _gauge(self, model: str) -> Gauge:
        gauge = self._in_flight.get(model)
        if gauge is None:
            gauge = self._in_flight[model] = self.in_flight.labels(model)
        return gauge

    def refused(self, model: str, code: str) -> None:
        self.rejected.labels(model, code).inc()

    def finished(
        self, model: str, status: str, thinking: bool, usage: Usage, ttft_s: float | None, duration_s: float
    ) -> None:
        outcome = self._outcomes.get((model, status, thinking))
        if outcome is None:
            mode = "thinking" if thinking else "non-thinking"
            outcome = self._outcomes[(model, status, thinking)] = self.requests.labels(model, status, mode)
        outcome.inc()
        u = usage
        series = self._finished.get(model)
        if series is None:
            tokens = self.tokens
            series = self._finished[model] = _Finished(
                tokens.labels(model, "input"),
                tokens.labels(model, "cached"),
                tokens.labels(model, "output"),
                tokens.labels(model, "reasoning"),
                self.duration.labels(model),
            )
        series.input.inc(u.prompt_tokens)
        series.cached.inc(u.cached_tokens)
        series.output.inc(u.completion_tokens)
        series.reasoning.inc(u.reasoning_tokens)
        series.duration.observe(duration_s)
        if ttft_s is not None:
            if series.ttft is None:
                series.ttft = self.ttft.labels(model)
            series.ttft.observe(ttft_s)
            if u.completion_tokens > 1:
                gap = (duration_s - ttft_s) / (u.completion_tokens - 1)
                if series.per_token is None:
                    series.per_token = self.per_token.labels(model)
                series.per_token.observe(max(gap, 0.0))

    def backlog(self, records: int) -> None:
        self.usage_backlog.set(records)

    def rate_limiter_failed(self, outcome: str) -> None:
        self.limiter_failures.labels(outcome).inc()

    def usage_poisoned(self, records: int) -> None:
        self.usage_poison.inc(records)

    def journal_failed(self, stage: str) -> None:
        self.journal_failures.labels(stage).inc()

    def watch_engines(self, source: EngineSource, lines: LineSource | None = None) -> None:
        self.registry.register(_EngineCollector(source, lines))
        # Remote engines also report each of their upstreams.
        self.registry.register(UpstreamCollector(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    def __init__(self, source: EngineSource, lines: LineSource | None) -> None:
        self._source = source
        self._lines = lines

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "thinkserve_engine_active_sequences", "Sequences holding a slot.", labels=["engine"]
        )
        queue = GaugeMetricFamily(
            "thinkserve_engine_queue_depth", "Requests waiting for a slot.", labels=["engine"]
        )
        kv_used = GaugeMetricFamily(
            "thinkserve_engine_kv_cells_used", "KV cache cells in use.", labels=["engine"]
        )
        kv_ratio = GaugeMetricFamily(
            "thinkserve_engine_kv_cache_usage_ratio",
            "KV cache cells in use / KV cache size.",
            labels=["engine"],
        )
        sampled = CounterMetricFamily(
            "thinkserve_engine_sampled_tokens", "Tokens sampled.", labels=["engine"]
        )
        up = GaugeMetricFamily(
            "thinkserve_engine_up", "1 while the engine takes work (health() is up).", labels=["engine"]
        )
        restarts = CounterMetricFamily(
            "thinkserve_engine_restarts", "Times the engine process was started again.", labels=["engine"]
        )
        line = GaugeMetricFamily(
            "thinkserve_fair_line_waiting",
            "Admitted requests waiting in the gateway's fair line for a place in the engine.",
            labels=["engine"],
        )
        for f in engine_figures(self._source()):
            if self._lines is not None:
                line.add_metric([f.name], float(self._lines(f.name)))
            up.add_metric([f.name], 1.0 if f.up else 0.0)
            restarts.add_metric([f.name], float(f.restarts))
            active.add_metric([f.name], float(f.active_sequences))
            queue.add_metric([f.name], float(f.queue_depth))
            sampled.add_metric([f.name], float(f.sampled_tokens))
            if f.kv_size > 0:
                kv_used.add_metric([f.name], float(f.kv_cells_used))
                kv_ratio.add_metric([f.name], f.kv_cells_used / f.kv_size)
        yield from (active, queue, kv_used, kv_ratio, sampled, up, restarts, line)
