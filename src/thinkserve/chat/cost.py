"""What a call costs at the prices the server bills with (imports platform.billing).

The prices are the ``[prices."MODEL"]`` tables of the server's config file (``--config``, or the
settings of the embedded server), and the rules are the server's own (``platform.billing.charge``):
reasoning is output; a call that thought pays the thinking-mode output price.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from thinkserve.chat.events import Tokens
from thinkserve.platform.billing import Price, charge, parse_prices, to_money


def prices_from(config: Path | None) -> dict[str, Price]:
    """The ``[prices]`` of a config file (none without one); raises ``OSError``, ``ValueError``."""
    if config is None:
        return {}
    data = tomllib.loads(config.read_text("utf-8"))
    return parse_prices(data.get("prices", {}))


def cost_nano(prices: Mapping[str, Price], model: str, tokens: Tokens) -> int | None:
    """The call's list price in nano-units, or ``None`` when the model has no price."""
    price = prices.get(model)
    if price is None:
        return None
    return charge(
        price,
        thinking=tokens.reasoning > 0,
        input_tokens=tokens.prompt,
        cached_tokens=tokens.cached,
        output_tokens=tokens.output,
        reasoning_tokens=tokens.reasoning,
    ).cost_nano


def money(nano: int) -> str:
    """``1500000`` -> ``"0.0015"`` (the currency is whatever the prices are in)."""
    return f"{to_money(nano):f}"
