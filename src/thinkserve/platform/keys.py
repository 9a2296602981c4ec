"""API keys: the secret, its stored digest and the key's settings (imports platform.limits).

A key looks like ``sk-<48 hex>`` and comes as ``Authorization: Bearer sk-…``; only its SHA-256
digest is stored. The secret is shown once, when
the key is created. Keys are random 192-bit strings, so a fast hash is enough (no password
stretching needed), and the digest is compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from thinkserve.platform.limits import Limits


def parse_bearer(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def new_secret() -> str:
    return "sk-" + secrets.token_hex(24)


def digest(secret: str) -> str:
    """The stored form of a key: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class AmbiguousKey(ValueError):
    """A shown prefix that matches several active keys: revoking must name exactly one key, so
    nothing is revoked and ``candidates`` (their ids) are shown instead."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        super().__init__(
            f"{prefix!r} matches {len(candidates)} active keys ({', '.join(candidates)}); "
            "nothing was revoked: name one key by its id"
        )
        self.candidates = candidates


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored (never the secret)."""

    id: str
    name: str
    digest: str
    prefix: str
    """The first characters of the secret, to recognise it in listings (``sk-3f2a``)."""
    workspace: str | None = None
    admin: bool = False
    limits: Limits = field(default_factory=Limits)
    quota_tokens: int | None = None
    """Free tokens per model; usage beyond is billed."""
    spend_limit_nano: int | None = None
    created_at: float = field(default_factory=time.time)
    revoked_at: float | None = None


def from_secret(secret: str, name: str) -> ApiKey:
    """A normal key (no admin rights, no limits of its own) for a secret made elsewhere."""
    return ApiKey(id=new_key_id(), name=name, digest=digest(secret), prefix=secret[:7])


def mint(
    name: str,
    *,
    workspace: str | None = None,
    admin: bool = False,
    limits: Limits | None = None,
    quota_tokens: int | None = None,
    spend_limit_nano: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret."""
    secret = new_secret()
    key = ApiKey(
        id=new_key_id(),
        name=name,
        digest=digest(secret),
        prefix=secret[:7],
        workspace=workspace,
        admin=admin,
        limits=limits or Limits(),
        quota_tokens=quota_tokens,
        spend_limit_nano=spend_limit_nano,
    )
    return key, secret
