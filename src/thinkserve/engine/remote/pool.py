"""The pool of upstreams: which one takes a request, and the health loop (imports engine.remote).

Routing, for a prompt:

1. **Prefix affinity** (as SGLang's cache-aware router does): the upstream that was given the
   longest recorded prefix of this prompt (``affinity``) takes it when that prefix is at least
   ``affinity_threshold`` of the prompt, so the turns of one conversation, and the continuation
   after a thinking-budget pause, land where their KV cache is;
2. **unless the load is uneven**: when that upstream runs more than ``balance_abs`` requests over
   the least loaded one, or when nothing matches, the request goes to the upstream with the
   fewest requests in flight per unit of weight (ties in turn).

Only upstreams that are ``up`` take requests; ``exclude`` skips the ones a request already failed
on (failover).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence as Seq

from thinkserve.engine.remote.affinity import PrefixIndex
from thinkserve.engine.remote.settings import RemoteSettings
from thinkserve.engine.remote.upstream import Upstream

log = logging.getLogger("thinkserve.engine.remote")


class Pool:
    """The upstreams of one remote engine and the routing between them."""

    def __init__(self, upstreams: Seq[Upstream], settings: RemoteSettings) -> None:
        self.upstreams = tuple(upstreams)
        self._settings = settings
        self._index = PrefixIndex()
        self._turn = 0
        self._health: asyncio.Task[None] | None = None

    def routable(self) -> list[Upstream]:
        return [u for u in self.upstreams if u.routable]

    def choose(
        self, prompt: Seq[int], *, exclude: Seq[Upstream] = (), prefer: Upstream | None = None
    ) -> Upstream | None:
        """The upstream for ``prompt``, recorded as holding its prefix; None if none is up."""
        if len(self.upstreams) == 1:
            # Nothing to choose between: no prefix to hash nor to remember.
            only = self.upstreams[0]
            return only if only.routable and only not in exclude else None
        candidates = [u for u in self.upstreams if u.routable and u not in exclude]
        if not candidates:
            return None
        chosen = self._by_affinity(prompt, candidates, prefer) or self._least_loaded(candidates)
        self._index.record(prompt, self.upstreams.index(chosen), chosen.epoch)
        return chosen

    def _by_affinity(
        self, prompt: Seq[int], candidates: list[Upstream], prefer: Upstream | None
    ) -> Upstream | None:
        holder = prefer if prefer in candidates else None
        if holder is None:
            found = self._index.match(prompt)
            if found is None:
                return None
            index, epoch, tokens = found
            upstream = self.upstreams[index]
            if upstream not in candidates or upstream.epoch != epoch:
                return None
            if tokens < self._settings.affinity_threshold * len(prompt):
                return None
            holder = upstream
        least = min(u.in_flight for u in candidates)
        if holder.in_flight - least > self._settings.balance_abs:
            return None
        return holder

    def _least_loaded(self, candidates: list[Upstream]) -> Upstream:
        # Start the scan at a rotating place so equal loads take turns.
        self._turn = (self._turn + 1) % len(candidates)
        order = candidates[self._turn :] + candidates[: self._turn]
        return min(order, key=lambda u: (u.in_flight + 1) / u.weight)

    # -- health ---------------------------------------------------------------------------------

    async def check_all(self) -> None:
        await asyncio.gather(*(u.check() for u in self.upstreams))

    def start_health_checks(self) -> None:
        if self._health is None:
            self._health = asyncio.get_running_loop().create_task(self._health_loop())

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.health_interval)
            try:
                await self.check_all()
            except Exception:
                log.exception("the upstream health check failed")

    async def aclose(self) -> None:
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health
            self._health = None
        for upstream in self.upstreams:
            await upstream.aclose()
