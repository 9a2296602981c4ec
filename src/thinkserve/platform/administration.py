"""Key administration shared by the admin API and the CLI: minting from admin fields, listing,
the reach of an admin (its scope) and the JSON form of a key (imports platform).

A scope is the workspace an admin key is bound to (``Principal.bound``): such an admin sees,
creates, revokes and reads the usage of that workspace's keys only. None is global: operator keys,
unbound admin keys and the CLI.

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

from thinkserve.platform.billing import PriceError, from_money, to_money
from thinkserve.platform.columns import INT32_MAX, INT64_MAX, NAME_LENGTH
from thinkserve.platform.keys import ApiKey, mint
from thinkserve.platform.limits import Limits
from thinkserve.platform.store import Store

# The largest value of each count, from its column (Integer or BigInteger).
COUNT_MAX = {
    "rpm": INT32_MAX,
    "tpm": INT64_MAX,
    "rps": INT32_MAX,
    "tps": INT64_MAX,
    "concurrency": INT32_MAX,
    "quota_tokens": INT64_MAX,
}


class OutOfScope(PermissionError):
    """An admin bound to a workspace asked for a key outside it (another workspace, or none)."""


def check_scope(key: ApiKey, scope: str | None) -> None:
    """Raise ``OutOfScope`` unless an admin with ``scope`` (None: global) may create ``key``."""
    if scope is not None and key.workspace != scope:
        where = "an unbound key" if key.workspace is None else f"a key for workspace {key.workspace!r}"
        raise OutOfScope(
            f"This admin key is bound to workspace {scope!r}: it may not create {where} "
            f'(create it with "workspace": {scope!r}).'
        )


class KeyFieldError(ValueError):
    """A field of a new key that cannot be stored; ``param`` names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def check_text(value: str, param: str, limit: int = NAME_LENGTH) -> str:
    """A name the store keeps: at most ``limit`` characters, none of them a control character
    (PostgreSQL refuses NUL in text)."""
    if len(value) > limit:
        raise KeyFieldError(f"{param} must be at most {limit} characters", param)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise KeyFieldError(f"{param} must not contain control characters", param)
    return value


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
    """A new key and its secret; ``spend_limit`` is an amount (``"25.00"``).

    Raises ``KeyFieldError`` for a value its column cannot hold (``PriceError`` for the amount).
    """
    check_text(name, "name")
    if workspace is not None:
        check_text(workspace, "workspace")
    counts = {
        **{f: getattr(limits, f) for f in COUNT_MAX if f != "quota_tokens"},
        "quota_tokens": quota_tokens,
    }
    for field, value in counts.items():
        if value is not None and not 0 <= value <= COUNT_MAX[field]:
            raise KeyFieldError(f"{field} must be a count in [0, {COUNT_MAX[field]}]", field)
    spend = None if spend_limit is None else from_money(spend_limit)
    if spend is not None and spend > INT64_MAX:
        raise PriceError(f"not an amount: {spend_limit!r} (at most {to_money(INT64_MAX)})")
    return mint(
        name,
        workspace=workspace,
        admin=admin,
        limits=limits,
        quota_tokens=quota_tokens,
        spend_limit_nano=spend,
    )


async def keys_with_spend(
    store: Store, *, include_revoked: bool = True, scope: str | None = None
) -> list[tuple[ApiKey, int]]:
    """Keys in creation order (of workspace ``scope`` only, when given), each with what it was
    billed so far (nano-units)."""
    keys = await store.keys(include_revoked=include_revoked, scope=scope)
    spent = await store.spent([k.id for k in keys])
    return [(k, spent.get(k.id, 0)) for k in keys]
