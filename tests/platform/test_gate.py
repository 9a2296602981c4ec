"""The platform gate in process: keys, workspaces, admission limits, spending limit, metering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from thinkserve.core.errors import Arrearage, InvalidApiKey, RateLimited, WorkspaceDenied
from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.core.types import Usage
from thinkserve.platform import keys
from thinkserve.platform.billing import Price
from thinkserve.platform.limits import Limits
from thinkserve.platform.metering import metered
from thinkserve.platform.settings import PlatformSettings
from thinkserve.platform.stored_keys import StoredKeys

from .conftest import ADMIN_KEY


def settings(tmp_path: Path, db: str | None, **limits: Limits) -> PlatformSettings:
    return PlatformSettings(
        bootstrap_keys=(ADMIN_KEY,),
        data_dir=tmp_path / "data",
        database_url=db,
        prices={"m": Price(input=Decimal(1000), output=Decimal(1000))},
        limits=dict(limits),
    )


async def events(n: int, *, finish: bool = True) -> AsyncIterator[Event]:
    for i in range(1, n + 1):
        yield ReasoningDelta("r", Usage(10, 0, i, i))
    if finish:
        yield AnswerDelta("a", Usage(10, 0, n + 1, n))
        yield Finished("stop", Usage(10, 0, n + 1, n), True)


async def run(gate: StoredKeys, authorization: str, model: str = "m", *, n: int = 3) -> None:
    principal = await gate.authenticate(authorization, None)
    admission = await gate.admit(principal, model, 10)
    async for _ in metered(gate, admission, True, events(n)):
        pass


@pytest.mark.anyio
async def test_keys_and_workspaces(db: str | None, tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, db))
    try:
        boot = await gate.authenticate(f"Bearer {ADMIN_KEY}", "any")
        assert boot.admin and boot.workspace == "any"
        key, secret = keys.mint("alice", workspace="w1")
        await gate.create_key(key)
        p = await gate.authenticate(f"Bearer {secret}", None)
        assert (p.key_id, p.workspace, p.admin) == (key.id, "w1", False)
        assert (await gate.authenticate(f"Bearer {secret}", "w1")).workspace == "w1"
        with pytest.raises(WorkspaceDenied) as denied:
            await gate.authenticate(f"Bearer {secret}", "w2")
        assert denied.value.code == "Workspace.AccessDenied"
        for bad in (None, "Bearer", "Basic abc", f"Bearer {secret}x"):
            with pytest.raises(InvalidApiKey):
                await gate.authenticate(bad, None)
        assert await gate.revoke(key.id)
        with pytest.raises(InvalidApiKey):
            await gate.authenticate(f"Bearer {secret}", None)
    finally:
        await gate.aclose()


@pytest.mark.anyio
async def test_spending_limit_gives_arrearage(db: str | None, tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, db))
    try:
        # 1000 per million tokens: 14 tokens cost 0.014; the limit is 0.02 -> two requests pass.
        key, secret = keys.mint("spender", spend_limit_nano=20_000_000)
        await gate.create_key(key)
        await run(gate, f"Bearer {secret}")
        await gate.flush()
        await run(gate, f"Bearer {secret}")
        await gate.flush()
        with pytest.raises(Arrearage) as info:
            await run(gate, f"Bearer {secret}")
        assert info.value.message == "Access denied, please make sure your account is in good standing."
        assert (await gate.store.spent([key.id]))[key.id] == 28_000_000
    finally:
        await gate.aclose()


@pytest.mark.anyio
async def test_concurrency_and_model_limits(db: str | None, tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, db, m=Limits(rpm=3, rps=100)))
    try:
        key, secret = keys.mint("c", limits=Limits(concurrency=1))
        await gate.create_key(key)
        p = await gate.authenticate(f"Bearer {secret}", None)
        first = await gate.admit(p, "m", 10)
        with pytest.raises(RateLimited) as busy:
            await gate.admit(p, "m", 10)
        assert busy.value.code == "Throttling"
        first.release()
        first.release()  # idempotent
        (await gate.admit(p, "m", 10)).release()
        (await gate.admit(p, "m", 10)).release()  # the third of rpm=3 (the refused one counted nothing)
        with pytest.raises(RateLimited) as limited:
            await gate.admit(p, "m", 10)
        assert limited.value.code == "Throttling.RateQuota"
        # the model's limits apply per key: another key still gets its own 3
        other, other_secret = keys.mint("d")
        await gate.create_key(other)
        q = await gate.authenticate(f"Bearer {other_secret}", None)
        (await gate.admit(q, "m", 10)).release()
        (await gate.admit(q, "other-model", 10)).release()
    finally:
        await gate.aclose()


@pytest.mark.anyio
async def test_metered_records_cancelled_and_failed_streams(db: str | None, tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, db))
    try:
        principal = await gate.authenticate(f"Bearer {ADMIN_KEY}", "w")
        stream = metered(gate, await gate.admit(principal, "m", 10), True, events(5))
        async for event in stream:
            if event.usage.completion_tokens == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]  # the client went away after two tokens

        async def failing() -> AsyncIterator[Event]:
            yield ReasoningDelta("r", Usage(10, 0, 1, 1))
            raise RuntimeError("engine died")

        with pytest.raises(RuntimeError):
            async for _ in metered(gate, await gate.admit(principal, "m", 10), True, failing()):
                pass
        await run(gate, f"Bearer {ADMIN_KEY}")
        await gate.flush()
        rows = await gate.store.rows(0)
        by_status = {r.status: r for r in rows}
        assert set(by_status) == {"cancelled", "error", "ok"}
        assert by_status["cancelled"].output_tokens == 2 and by_status["cancelled"].workspace == "w"
        assert by_status["error"].output_tokens == 1
        assert by_status["ok"].output_tokens == 4 and by_status["ok"].reasoning_tokens == 3
        assert by_status["ok"].ttft_ms is not None
    finally:
        await gate.aclose()


@pytest.mark.anyio
async def test_a_key_with_tpm_60000_can_send_a_1500_token_prompt(tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, None))
    try:
        key, secret = keys.mint("t", limits=Limits(tpm=60_000))
        await gate.create_key(key)
        p = await gate.authenticate(f"Bearer {secret}", None)
        (await gate.admit(p, "m", 1500)).release()
        with pytest.raises(RateLimited) as burst:
            await gate.admit(p, "m", 1500)
        assert burst.value.code == "Throttling.BurstRate" and 0.9 < burst.value.retry_after <= 1.0
    finally:
        await gate.aclose()
