"""Billing rules of the seed (計費說明), table-tested."""

from __future__ import annotations

from decimal import Decimal

import pytest

from thinkserve.platform.billing import (
    Price,
    PriceError,
    after_free_quota,
    charge,
    from_money,
    parse_prices,
    to_money,
)

FULL = Price(
    input=Decimal("0.8"), cached_input=Decimal("0.16"), output=Decimal(2), thinking_output=Decimal(8)
)
PLAIN = Price(input=Decimal("0.8"), output=Decimal(2))


@pytest.mark.parametrize(
    ("price", "thinking", "inp", "cached", "out", "reasoning", "nano", "thinking_price"),
    [
        # non-thinking: input + output at the non-thinking price
        (FULL, False, 1000, 0, 500, 0, 1_800_000, False),
        # thinking with reasoning: all output (reasoning included) at the thinking price
        (FULL, True, 1000, 0, 500, 300, 4_800_000, True),
        # thinking mode that wrote no reasoning: the non-thinking price
        (FULL, True, 1000, 0, 500, 0, 1_800_000, False),
        # reasoning counted but the request was not in thinking mode: non-thinking price
        (FULL, False, 1000, 0, 500, 300, 1_800_000, False),
        # cached prompt tokens at the cached price
        (FULL, False, 1000, 400, 500, 0, 1_544_000, False),
        # no cached price: cached tokens cost as input; no thinking price: output price
        (PLAIN, True, 1000, 400, 500, 300, 1_800_000, True),
        # nothing generated (e.g. cancelled before the first token): input only
        (FULL, True, 1000, 0, 0, 0, 800_000, False),
        # a model without a price costs nothing
        (None, True, 1000, 0, 500, 300, 0, True),
        # sub-nano amounts round half up
        (Price(input=Decimal("0.0005"), output=Decimal(0)), False, 1, 0, 0, 0, 1, False),
    ],
)
def test_charge(
    price: Price | None,
    thinking: bool,
    inp: int,
    cached: int,
    out: int,
    reasoning: int,
    nano: int,
    thinking_price: bool,
) -> None:
    got = charge(
        price,
        thinking=thinking,
        input_tokens=inp,
        cached_tokens=cached,
        output_tokens=out,
        reasoning_tokens=reasoning,
    )
    assert (got.cost_nano, got.thinking_price) == (nano, thinking_price)


@pytest.mark.parametrize(
    ("cost", "tokens", "free_left", "billed", "free"),
    [
        (1_800_000, 1500, 10_000, 0, 1500),  # inside the free quota
        (1_800_000, 1500, 1500, 0, 1500),  # exactly uses it up
        (1_800_000, 1500, 500, 1_200_000, 500),  # straddles the end: pays the share beyond
        (1_800_000, 1500, 0, 1_800_000, 0),  # quota used up
        (1_800_000, 1500, -20, 1_800_000, 0),  # overdrawn by a concurrent writer: no free tokens
        (0, 0, 100, 0, 0),
    ],
)
def test_free_quota(cost: int, tokens: int, free_left: int, billed: int, free: int) -> None:
    assert after_free_quota(cost, tokens, free_left) == (billed, free)


def test_money_round_trip() -> None:
    assert from_money("12.5") == 12_500_000_000
    assert to_money(1_500_000) == Decimal("0.0015")
    assert to_money(0) == 0
    with pytest.raises(PriceError):
        from_money("-1")
    with pytest.raises(PriceError):
        from_money("lots")


def test_parse_prices() -> None:
    prices = parse_prices({"qwen-plus": {"input": 0.8, "output": 2, "thinking_output": "8"}})
    assert prices["qwen-plus"] == Price(Decimal("0.8"), Decimal(2), None, Decimal(8))


@pytest.mark.parametrize(
    "table",
    [
        {"m": {"input": 1}},
        {"m": {"input": 1, "output": 2, "colour": 3}},
        {"m": {"input": -1, "output": 2}},
        {"m": {"input": True, "output": 2}},
        {"m": {"input": "x", "output": 2}},
        {"m": 3},
    ],
)
def test_bad_prices_are_refused(table: dict[str, object]) -> None:
    with pytest.raises(PriceError):
        parse_prices(table)


def test_shipped_example_prices_parse() -> None:
    import tomllib
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "prices.toml"
    prices = parse_prices(tomllib.loads(example.read_text())["prices"])
    assert "qwen-plus" in prices and prices["qwen-plus"].thinking_output is not None
