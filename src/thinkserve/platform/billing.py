"""Prices and the billing rules of Model Studio's thinking models (imports nothing from thinkserve).

A price table in the config file, per million tokens, in whatever currency the operator bills in::

    [prices."qwen-plus"]
    input = 0.8             # prompt tokens not served from the cache
    cached_input = 0.16     # prompt tokens served from the prefix cache (default: input)
    output = 2.0            # output in non-thinking mode
    thinking_output = 8.0   # output in thinking mode (default: output)
    search = 0.004          # per web search call (enable_search; default: free)

The rules (Model Studio's 計費說明): reasoning tokens are output tokens; a request that thought is
billed at the thinking-mode output price; one that ran in thinking mode but wrote no reasoning is
billed at the non-thinking price. Money is kept as integer nano-units (1e-9 of the currency) so
that sums are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

NANO = Decimal(1_000_000_000)
_PER_TOKEN = NANO / Decimal(1_000_000)
"""Nano-units per token for a price of 1 per million tokens."""


class PriceError(ValueError):
    """A malformed ``[prices]`` table."""


@dataclass(frozen=True, slots=True)
class Price:
    """Per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    thinking_output: Decimal | None = None
    search: Decimal | None = None
    """Per search call, not per million."""


@dataclass(frozen=True, slots=True)
class Charge:
    """What one request costs before any free quota."""

    cost_nano: int
    thinking_price: bool
    """Whether the thinking-mode output price applied."""


def charge(
    price: Price | None,
    *,
    thinking: bool,
    input_tokens: int,
    cached_tokens: int,
    output_tokens: int,
    reasoning_tokens: int,
) -> Charge:
    """The list price of a request; ``output_tokens`` already includes the reasoning tokens."""
    thought = thinking and reasoning_tokens > 0
    if price is None:
        return Charge(0, thought)
    cached = min(cached_tokens, input_tokens)
    out_price = price.thinking_output if thought and price.thinking_output is not None else price.output
    cached_price = price.input if price.cached_input is None else price.cached_input
    total = (
        Decimal(input_tokens - cached) * price.input
        + Decimal(cached) * cached_price
        + Decimal(output_tokens) * out_price
    ) * _PER_TOKEN
    return Charge(int(total.to_integral_value(ROUND_HALF_UP)), thought)


def search_cost(price: Price | None, calls: int) -> int:
    """Nano-units of ``calls`` web searches (not covered by the free token quota)."""
    if price is None or price.search is None or calls <= 0:
        return 0
    return int((Decimal(calls) * price.search * NANO).to_integral_value(ROUND_HALF_UP))


def after_free_quota(cost_nano: int, tokens: int, free_left: int) -> tuple[int, int]:
    """``(billed_nano, free_tokens_used)``: free tokens are whole tokens of the request; a request
    that straddles the end of the quota pays the share of its cost beyond it."""
    free = max(0, min(tokens, free_left))
    if tokens <= 0 or free == 0:
        return cost_nano, 0
    billed = (Decimal(cost_nano) * Decimal(tokens - free) / Decimal(tokens)).to_integral_value(ROUND_HALF_UP)
    return int(billed), free


def to_money(nano: int) -> Decimal:
    """Nano-units as a decimal amount (``1500000`` -> ``Decimal("0.0015")``)."""
    return (Decimal(nano) / NANO).normalize() if nano else Decimal(0)


def from_money(amount: str | int | float | Decimal) -> int:
    """An amount (``"12.5"``) as nano-units; raises ``PriceError``."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise PriceError(f"not an amount: {amount!r}") from exc
    if not value.is_finite() or value < 0:
        raise PriceError(f"not an amount: {amount!r}")
    return int((value * NANO).to_integral_value(ROUND_HALF_UP))


_FIELDS = ("input", "output", "cached_input", "thinking_output", "search")


def parse_prices(tables: dict[str, Any]) -> dict[str, Price]:
    """``[prices.MODEL]`` tables -> prices; raises ``PriceError``."""
    out: dict[str, Price] = {}
    for model, table in tables.items():
        if not isinstance(table, dict):
            raise PriceError(f"[prices.{model!r}] must be a table")
        unknown = set(table) - set(_FIELDS)
        if unknown:
            raise PriceError(f"unknown key(s) {sorted(unknown)} in [prices.{model!r}]")
        if "input" not in table or "output" not in table:
            raise PriceError(f"[prices.{model!r}] needs input and output")
        values: dict[str, Decimal] = {}
        for name, raw in table.items():
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise PriceError(f"bad {name} {raw!r} in [prices.{model!r}]")
            try:
                value = Decimal(str(raw))
            except InvalidOperation as exc:
                raise PriceError(f"bad {name} {raw!r} in [prices.{model!r}]") from exc
            if not value.is_finite() or value < 0:
                raise PriceError(f"bad {name} {raw!r} in [prices.{model!r}]")
            values[name] = value
        out[model] = Price(
            input=values["input"],
            output=values["output"],
            cached_input=values.get("cached_input"),
            thinking_output=values.get("thinking_output"),
            search=values.get("search"),
        )
    return out
