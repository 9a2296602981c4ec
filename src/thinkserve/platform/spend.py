"""Spending limits, checked at admission (imports core, platform).

A key's limit is checked against what was billed so far, read from SQL and cached for ``ttl_s``
(5 s) and raised by each batch this process commits: requests in flight when it is crossed
finish, the next one gets ``Arrearage``. While the store is unreachable the last known figure is
used (asked again once per ``ttl_s``); a key never checked before gets 503 ``StoreUnavailable``.
"""

from __future__ import annotations

import time

from thinkserve.core.errors import Arrearage
from thinkserve.platform.keys import ApiKey
from thinkserve.platform.store import Store, StoreUnavailable


class SpendLimits:
    def __init__(self, store: Store, *, ttl_s: float = 5.0) -> None:
        self._store = store
        self._ttl = ttl_s
        self._spent: dict[str, tuple[int, float]] = {}
        """Key id -> (billed nano-units, monotonic time the figure expires)."""

    async def check(self, key: ApiKey | None) -> None:
        """Raise ``Arrearage`` when ``key`` (None: a bootstrap key) has spent its limit."""
        if key is None or key.spend_limit_nano is None:
            return
        if await self._spent_of(key.id) >= key.spend_limit_nano:
            raise Arrearage()

    def committed(self, added: dict[str, int]) -> None:
        """Nano-units per key just billed by this process."""
        for key_id, nano in added.items():
            hit = self._spent.get(key_id)
            if hit is not None:
                self._spent[key_id] = (hit[0] + nano, hit[1])

    async def _spent_of(self, key_id: str) -> int:
        now = time.monotonic()
        hit = self._spent.get(key_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            spent = (await self._store.spent([key_id])).get(key_id, 0)
        except Exception as error:
            if hit is None:
                raise StoreUnavailable() from error
            self._spent[key_id] = (hit[0], now + self._ttl)
            return hit[0]
        self._spent[key_id] = (spent, now + self._ttl)
        return spent
