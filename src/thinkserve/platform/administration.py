"""Key administration shared by the admin API and the CLI: minting from admin fields, listing,
and the JSON form of a key (imports platform).

A key as listed (``GET /admin/v1/keys``, ``thinkserve keys list --json``); money is a decimal
string in the operator's currency::

    {"id": "key_1a2b3c4d5e6f", "name": "ci", "prefix": "sk-3f2a", "workspace": null, "admin": false,
     "rpm": 60, "tpm": 100000, "rps": null, "tps": null, "concurrency": null,
     "quota_tokens": 1000000, "spend_limit": "25", "spent": "0.0015",
     "created_at": 1732560000.1, "revoked_at": null}
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from thinkserve.platform.billing import from_money, to_money
from thinkserve.platform.keys import ApiKey, mint
from thinkserve.platform.limits import Limits
from thinkserve.platform.store import Store


def key_json(key: ApiKey, spent_nano: int | None = None) -> dict[str, Any]:
    limits = key.limits
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "workspace": key.workspace,
        "admin": key.admin,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "rps": limits.rps,
        "tps": limits.tps,
        "concurrency": limits.concurrency,
        "quota_tokens": key.quota_tokens,
        "spend_limit": None if key.spend_limit_nano is None else str(to_money(key.spend_limit_nano)),
        "spent": None if spent_nano is None else str(to_money(spent_nano)),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def new_key(
    name: str,
    *,
    workspace: str | None,
    admin: bool,
    limits: Limits,
    quota_tokens: int | None,
    spend_limit: str | int | float | Decimal | None,
) -> tuple[ApiKey, str]:
    """A new key and its secret; ``spend_limit`` is an amount (``"25.00"``); raises ``PriceError``."""
    spend = None if spend_limit is None else from_money(spend_limit)
    return mint(
        name,
        workspace=workspace,
        admin=admin,
        limits=limits,
        quota_tokens=quota_tokens,
        spend_limit_nano=spend,
    )


async def keys_with_spend(store: Store, *, include_revoked: bool = True) -> list[tuple[ApiKey, int]]:
    """Keys in creation order, each with what it was billed so far (nano-units)."""
    keys = await store.keys(include_revoked=include_revoked)
    spent = await store.spent([k.id for k in keys])
    return [(k, spent.get(k.id, 0)) for k in keys]
