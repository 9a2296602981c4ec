"""Engine gauges come from each engine's typed ``snapshot()``."""

from __future__ import annotations

from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.engine.protocol import EngineStats, Health
from thinkserve.monitor.metrics import Metrics


class _Loaded(FakeEngine):
    def snapshot(self) -> EngineStats:
        return EngineStats(active_sequences=3, waiting=2, sampled_tokens=40, kv_cells_used=256, kv_size=1024)


def test_gauges_follow_the_typed_stats() -> None:
    metrics = Metrics()
    metrics.watch_engines(lambda: {"fake": FakeEngine(), "busy": _Loaded()})
    text = metrics.render().decode()
    assert 'thinkserve_engine_active_sequences{engine="busy"} 3.0' in text
    assert 'thinkserve_engine_queue_depth{engine="busy"} 2.0' in text
    assert 'thinkserve_engine_sampled_tokens_total{engine="busy"} 40.0' in text
    assert 'thinkserve_engine_kv_cells_used{engine="busy"} 256.0' in text
    assert 'thinkserve_engine_kv_cache_usage_ratio{engine="busy"} 0.25' in text
    assert 'thinkserve_engine_active_sequences{engine="fake"} 0.0' in text
    # An engine without a KV cache reports no KV gauges.
    assert 'kv_cells_used{engine="fake"}' not in text


def test_the_fake_engine_is_always_up() -> None:
    assert FakeEngine().health() == Health("up", "scripted")


class _Down(FakeEngine):
    def health(self) -> Health:
        return Health("down", "the engine process was killed by SIGKILL", restarts=2)


def test_engine_up_and_restarts_follow_health() -> None:
    metrics = Metrics()
    metrics.watch_engines(lambda: {"fake": FakeEngine(), "crashed": _Down()})
    text = metrics.render().decode()
    assert 'thinkserve_engine_up{engine="fake"} 1.0' in text
    assert 'thinkserve_engine_up{engine="crashed"} 0.0' in text
    assert 'thinkserve_engine_restarts_total{engine="crashed"} 2.0' in text
    assert 'thinkserve_engine_restarts_total{engine="fake"} 0.0' in text
