"""Sliding-window limits: RPM/TPM, the per-second share (RPM/60), Retry-After; in process and in Redis."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from thinkserve.core.errors import RateLimited
from thinkserve.platform.limits import (
    Check,
    Limits,
    LimitsError,
    LocalLimiter,
    charges_for,
    checks_for,
    parse_limits,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _codes(limiter: LocalLimiter, checks_list: list[list[Check]]) -> list[str]:
    out = []
    for checks in checks_list:
        try:
            limiter.try_acquire(checks)
            out.append("ok")
        except RateLimited as error:
            out.append(error.code)
    return out


def test_burst_is_rpm_over_60() -> None:
    assert Limits(rpm=600).burst_requests == 10
    assert Limits(rpm=5).burst_requests == 1
    assert Limits(rpm=600, rps=50).burst_requests == 50
    assert Limits(tpm=1_000_000).burst_tokens == 16667
    assert Limits().burst_requests is None


def test_rpm_and_burst() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    limits = Limits(rpm=120)  # 2 per second
    checks = checks_for("key:k", limits, 1)
    assert _codes(limiter, [checks] * 3) == ["ok", "ok", "Throttling.BurstRate"]
    clock.now += 1.0
    assert _codes(limiter, [checks] * 2) == ["ok", "ok"]
    # 2 a second up to t=1059: 120 in the minute; the refused burst above counted nothing.
    for _ in range(58):
        clock.now += 1.0
        assert _codes(limiter, [checks] * 2) == ["ok", "ok"]
    clock.now += 0.5
    with pytest.raises(RateLimited) as info:
        limiter.try_acquire(checks)
    assert info.value.code == "Throttling.RateQuota"
    # The oldest requests (t=1000) leave the minute window at t=1060.
    assert info.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    assert _codes(limiter, [checks]) == ["ok"]


def test_tpm_counts_prompt_at_admission_and_output_after() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    limits = Limits(tpm=1000, tps=10_000)
    limiter.try_acquire(checks_for("key:k", limits, 600))
    limiter.try_acquire(charges_for("key:k", limits, 300))
    with pytest.raises(RateLimited) as info:
        limiter.try_acquire(checks_for("key:k", limits, 200))
    assert info.value.code == "Throttling.AllocationQuota"
    assert info.value.retry_after == pytest.approx(60.0)
    limiter.try_acquire(checks_for("key:k", limits, 100))
    clock.now += 60.0
    limiter.try_acquire(checks_for("key:k", limits, 900))


def test_all_or_nothing_across_scopes() -> None:
    limiter = LocalLimiter(Clock())
    key = checks_for("key:k", Limits(rpm=60_000), 1)
    model = checks_for("km:k:m", Limits(rpm=1, rps=1), 1)
    limiter.try_acquire(key + model)
    with pytest.raises(RateLimited):
        limiter.try_acquire(key + model)
    # the refused request did not count in the key's window
    assert limiter._windows["key:k:req:60"].total == 1


def test_parse_limits() -> None:
    assert parse_limits({"qwen-plus": {"rpm": 600, "tpm": 1_000_000}})["qwen-plus"] == Limits(600, 1_000_000)
    for bad in ({"m": {"rpm": -1}}, {"m": {"rpm": "x"}}, {"m": {"speed": 1}}, {"m": {"rpm": True}}, {"m": 1}):
        with pytest.raises(LimitsError):
            parse_limits(bad)


@pytest.mark.anyio
async def test_redis_windows_are_shared_and_atomic(redis_url: str) -> None:
    from thinkserve.platform.redis_limiter import RedisLimiter

    a, b = RedisLimiter(redis_url), RedisLimiter(redis_url)
    scope = "key:test-" + secrets.token_hex(4)
    checks = checks_for(scope, Limits(rpm=25, rps=1000), 1)

    async def one(limiter: RedisLimiter) -> str:
        try:
            await limiter.acquire(checks)
            return "ok"
        except RateLimited as error:
            return error.code

    try:
        results = await asyncio.gather(*(one(a if i % 2 else b) for i in range(60)))
        assert results.count("ok") == 25
        assert set(results) == {"ok", "Throttling.RateQuota"}
        burst = checks_for(scope + "-b", Limits(rpm=6000), 1)  # 100 per second
        got = await asyncio.gather(*(a.acquire(burst) for _ in range(100)), return_exceptions=True)
        assert not [g for g in got if g is not None]
        with pytest.raises(RateLimited) as info:
            await b.acquire(burst)
        assert info.value.code == "Throttling.BurstRate" and 0 < info.value.retry_after <= 1.0
        tokens = checks_for(scope + "-t", Limits(tpm=100, tps=1000), 60)
        await a.acquire(tokens)
        await b.add(charges_for(scope + "-t", Limits(tpm=100, tps=1000), 30))
        with pytest.raises(RateLimited) as info:
            await a.acquire(checks_for(scope + "-t", Limits(tpm=100, tps=1000), 20))
        assert info.value.code == "Throttling.AllocationQuota"
    finally:
        await a.aclose()
        await b.aclose()


def test_a_prompt_over_the_burst_passes_an_empty_second() -> None:
    """--tpm 60000 makes a burst of 1000 tokens a second; a 1,500-token prompt must still get in."""
    clock = Clock()
    limiter = LocalLimiter(clock)
    limits = Limits(tpm=60_000)
    assert limits.burst_tokens == 1000
    limiter.try_acquire(checks_for("key:k", limits, 1500))
    # It used up the second: the next request waits until it leaves the 1 s window.
    with pytest.raises(RateLimited) as info:
        limiter.try_acquire(checks_for("key:k", limits, 10))
    assert info.value.code == "Throttling.BurstRate"
    assert info.value.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    limiter.try_acquire(checks_for("key:k", limits, 10))
    # A second that is not empty refuses an oversized prompt until what is in it has left.
    clock.now += 0.25
    with pytest.raises(RateLimited) as info:
        limiter.try_acquire(checks_for("key:k", limits, 1500))
    assert info.value.code == "Throttling.BurstRate"
    assert info.value.retry_after == pytest.approx(0.75)
    clock.now += 0.75
    limiter.try_acquire(checks_for("key:k", limits, 1500))
    # The minute still bounds everything: 3010 of 60000 used, and a prompt over the TPM never fits.
    assert limiter._windows["key:k:tok:60"].total == 3010
    clock.now += 1.0
    with pytest.raises(RateLimited) as info:
        limiter.try_acquire(checks_for("key:k", limits, 60_001))
    assert info.value.code == "Throttling.AllocationQuota"


def test_oversize_only_applies_to_the_token_burst() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    # A zero per-second share still refuses everything.
    with pytest.raises(RateLimited):
        limiter.try_acquire(checks_for("key:z", Limits(tpm=60_000, tps=0), 1))
    # Requests per second are not oversized: rps=1 lets one through per second.
    checks = checks_for("key:r", Limits(rpm=60), 1)
    limiter.try_acquire(checks)
    with pytest.raises(RateLimited) as info:
        limiter.try_acquire(checks)
    assert info.value.code == "Throttling.BurstRate"


@pytest.mark.anyio
async def test_redis_a_prompt_over_the_burst_passes_an_empty_second(redis_url: str) -> None:
    from thinkserve.platform.redis_limiter import RedisLimiter

    limiter = RedisLimiter(redis_url)
    scope = "key:test-" + secrets.token_hex(4)
    limits = Limits(tpm=60_000)
    try:
        await limiter.acquire(checks_for(scope, limits, 1500))
        with pytest.raises(RateLimited) as info:
            await limiter.acquire(checks_for(scope, limits, 10))
        assert info.value.code == "Throttling.BurstRate" and 0.5 < info.value.retry_after <= 1.0
        await asyncio.sleep(info.value.retry_after + 0.05)
        await limiter.acquire(checks_for(scope, limits, 10))
        with pytest.raises(RateLimited) as info:
            await limiter.acquire(checks_for(scope, limits, 1500))
        assert info.value.code == "Throttling.BurstRate" and 0 < info.value.retry_after <= 1.0
        await asyncio.sleep(info.value.retry_after + 0.05)
        await limiter.acquire(checks_for(scope, limits, 1500))
        with pytest.raises(RateLimited) as info:
            await limiter.acquire(checks_for(scope + "-big", limits, 60_001))
        assert info.value.code == "Throttling.AllocationQuota"
    finally:
        await limiter.aclose()


class _BrokenLimiter:
    """A shared limiter whose store fails in some way other than a refusal."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def acquire(self, checks: object) -> None:
        raise self.error

    async def add(self, charges: object) -> None:
        raise self.error

    async def aclose(self) -> None:
        return None


@pytest.mark.anyio
async def test_every_slot_goes_back_whatever_the_limiter_raises() -> None:
    from thinkserve.platform.port import Principal
    from thinkserve.platform.throttle import Throttle

    principal = Principal("key_x", "x")
    limits = {"*": Limits(rpm=100, concurrency=2)}
    for error in (ConnectionError("reset"), asyncio.CancelledError(), RuntimeError("bug")):
        throttle = Throttle(_BrokenLimiter(error), limits)
        for _ in range(3):  # a leaked slot would refuse the third with "Throttling"
            with pytest.raises(type(error)):
                await throttle.admit(principal, None, "m", 10)
        assert throttle._in_flight == {}
