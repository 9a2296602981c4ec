"""Hourly aggregation, time parsing and the platform's settings."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from thinkserve.config import load_settings
from thinkserve.core.errors import ConfigError
from thinkserve.platform.database import database_url
from thinkserve.platform.limits import Limits
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.report import aggregate, parse_time, percentile

H = 1_732_568_400  # 2024-11-25T21:00:00Z


def row(
    hour: int, model: str, status: str = "ok", *, thinking: bool = True, ms: float = 100.0
) -> UsageRecord:
    return UsageRecord(
        id="r",
        key_id="key_a",
        workspace="ws",
        model=model,
        thinking=thinking,
        status=status,
        input_tokens=10,
        cached_tokens=2,
        output_tokens=30,
        reasoning_tokens=20,
        ttft_ms=5.0,
        duration_ms=ms,
        at=float(hour),
        cost_nano=1500,
    )


def test_aggregate_per_hour_and_model() -> None:
    rows = [row(H, "a", ms=m) for m in (10.0, 20.0, 30.0, 40.0)]
    rows += [row(H, "b", "error"), row(H + 3600, "a", "cancelled", thinking=False)]
    out = [h.to_json() for h in aggregate(rows)]
    assert [(o["hour"], o["model"], o["calls"]) for o in out] == [
        ("2024-11-25T21:00:00Z", "a", 4),
        ("2024-11-25T21:00:00Z", "b", 1),
        ("2024-11-25T22:00:00Z", "a", 1),
    ]
    first = out[0]
    assert first["input_tokens"] == 40 and first["cached_tokens"] == 8
    assert first["output_tokens"] == 120 and first["reasoning_tokens"] == 80
    assert first["cost"] == "0.000006" and first["latency_ms"] == {"p50": 20.0, "p95": 40.0}
    assert out[1]["errors"] == 1 and out[2]["cancelled"] == 1
    by_mode = aggregate(rows, ["mode"])
    modes = {(h.model, h.group["mode"]) for h in by_mode}
    assert modes == {("a", "thinking"), ("b", "thinking"), ("a", "non-thinking")}
    with pytest.raises(ValueError):
        aggregate(rows, ["colour"])


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


def test_parse_time() -> None:
    assert parse_time("24h", now=100_000.0) == 100_000.0 - 86_400
    assert parse_time("90m", now=10_000.0) == 4_600.0
    assert parse_time("1700000000") == 1_700_000_000.0
    assert parse_time("2024-11-25T21:00:00Z") == H
    assert parse_time("2024-11-25T21:00") == H
    with pytest.raises(ValueError):
        parse_time("yesterday")


@pytest.mark.parametrize(
    "text",
    ["1e30", "-1e30", "1e309", "-inf", "nan", "-1", "253402300800", "99999999999999999999999d", "0001-01-01"],
)
def test_parse_time_refuses_times_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_time(text, now=H)


def test_parse_time_bounds_and_long_input() -> None:
    assert parse_time("0") == 0.0
    assert parse_time("9999-12-31T23:59:59Z") == 253_402_300_799.0
    with pytest.raises(ValueError, match="not a time") as info:
        parse_time("y" * 100_000)
    assert len(str(info.value)) < 200


def test_settings_platform_tables_and_urls(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[server]\ndatabase_url = "postgresql://u@h/db"\nredis_url = "redis://r:6379/1"\n'
        '[limits."qwen-plus"]\nrpm = 600\ntpm = 1000000\n[limits."*"]\nconcurrency = 4\n'
        '[prices."qwen-plus"]\ninput = 0.8\noutput = 2\nthinking_output = 8\n'
    )
    s = load_settings(f, environ={})
    assert s.database_url == "postgresql://u@h/db" and s.redis_url == "redis://r:6379/1"
    assert s.limits == {"qwen-plus": Limits(rpm=600, tpm=1_000_000), "*": Limits(concurrency=4)}
    assert s.prices["qwen-plus"].thinking_output == Decimal(8)
    s = load_settings(
        f, environ={"THINKSERVE_DATABASE_URL": "sqlite:///x.db", "THINKSERVE_REDIS_URL": "redis://o"}
    )
    assert s.database_url == "sqlite:///x.db" and s.redis_url == "redis://o"
    assert database_url("sqlite:///x.db", tmp_path) == "sqlite+aiosqlite:///x.db"
    assert database_url("postgresql://u:p@h:5432/d", tmp_path) == "postgresql+asyncpg://u:p@h:5432/d"
    assert database_url(None, tmp_path) == f"sqlite+aiosqlite:///{tmp_path}/thinkserve.db"
    f.write_text('[limits."m"]\nrpm = "fast"\n')
    with pytest.raises(ConfigError):
        load_settings(f, environ={})
    f.write_text('[prices."m"]\ninput = 1\n')
    with pytest.raises(ConfigError):
        load_settings(f, environ={})


def test_model_names_must_fit_the_usage_table(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(f'[models."{"m" * 200}"]\nmax_output = 8\n')
    assert "m" * 200 in load_settings(f, environ={}).models
    f.write_text(f'[models."{"m" * 201}"]\nmax_output = 8\n')
    with pytest.raises(ConfigError, match="at most 200 printable characters"):
        load_settings(f, environ={})
