"""The fair line in front of an engine: keys take turns for places."""

from __future__ import annotations

import asyncio

import pytest

from thinkserve.core.errors import Overloaded, RateLimited
from thinkserve.service.fair import FairLine


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_keys_take_turns_for_places() -> None:
    line = FairLine(places=1, depth=64)
    served: list[str] = []

    async def request(key: str) -> None:
        await line.enter(key)
        served.append(key)

    await request("a")  # holds the only place
    flood = [asyncio.create_task(request("a")) for _ in range(5)]
    await _settle()
    single = asyncio.create_task(request("b"))
    await _settle()
    assert line.waiting == 6
    for _ in range(6):
        line.leave()
        await _settle()
    await asyncio.gather(*flood, single)
    # b came after five of a's, and is served with the first place that frees.
    assert served == ["a", "a", "b", "a", "a", "a", "a"]
    assert line.waiting == 0


@pytest.mark.anyio
async def test_a_waiter_that_goes_away_leaves_the_line() -> None:
    line = FairLine(places=1, depth=64)
    await line.enter("a")
    gone = asyncio.create_task(line.enter("a"))
    stays = asyncio.create_task(line.enter("b"))
    await _settle()
    gone.cancel()
    await _settle()
    assert line.waiting == 1
    line.leave()
    await asyncio.wait_for(stays, 1)
    line.leave()
    # Every place is free again: two entries in a row need no waiting.
    line_free = FairLine(places=1, depth=64)
    await line_free.enter("x")
    line_free.leave()
    await asyncio.wait_for(line.enter("c"), 1)


@pytest.mark.anyio
async def test_one_key_holds_at_most_half_the_line_and_a_full_line_refuses() -> None:
    line = FairLine(places=1, depth=4)
    await line.enter("a")
    waiters = [asyncio.create_task(line.enter("a")) for _ in range(2)]
    await _settle()
    with pytest.raises(RateLimited):
        await line.enter("a")
    waiters += [asyncio.create_task(line.enter(k)) for k in ("b", "c")]
    await _settle()
    with pytest.raises(Overloaded):
        await line.enter("d")
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert line.waiting == 0
