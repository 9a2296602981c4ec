"""The static-keys gate: a fixed set of keys, no limits, the last usage records in memory
(imports core, platform).

Tests and benchmarks pass it to ``create_app(gate=...)``; ``thinkserve serve`` runs
``stored_keys.StoredKeys`` instead. It has no admin operations, so ``/admin/v1`` answers 404.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from thinkserve.core.errors import InvalidApiKey
from thinkserve.platform.keys import parse_bearer
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.port import Administration, Admission, Principal


class StaticKeys:
    """Keys from ``THINKSERVE_API_KEYS`` / the config file; no limits; the last records in memory."""

    def __init__(self, keys: Iterable[str], *, keep: int = 1000) -> None:
        self._keys = [k.encode() for k in keys]
        self._keep = keep
        self.records: list[UsageRecord] = []

    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal:
        token = parse_bearer(authorization)
        if token is None:
            raise InvalidApiKey("You didn't provide an API key. ")
        candidate = token.encode()
        # compare_digest against every key: the time taken does not tell which key was close.
        matched = [i for i, key in enumerate(self._keys) if hmac.compare_digest(candidate, key)]
        if not matched:
            raise InvalidApiKey()
        return Principal(key_id=f"static-{matched[0]}", name="bootstrap", workspace=workspace)

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission:
        return Admission(principal, model)

    async def record(self, record: UsageRecord) -> None:
        self.records.append(record)
        del self.records[: -self._keep]

    def administration(self) -> Administration | None:
        return None
