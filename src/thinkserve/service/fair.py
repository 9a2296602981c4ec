"""Fair admission into an engine: a waiting line that hands out places round-robin by key
(imports core).

An engine decodes ``places`` sequences at once. Without a line in front, one key's burst of
fire-and-forget calls takes every slot and the whole engine queue, and another key's request waits
behind all of it (or is refused as overloaded). Here, requests beyond ``places`` wait in one line
per key, and each freed place goes to the key whose turn it is: the keys take turns, so a key with
one request waits for at most one place per other waiting key, however many requests the others
queued. A key may hold at most half the line (``Throttling``, 429, beyond it), so that no key fills
it; a full line gives 503 as a full engine queue did. README: "Fair admission".
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

from thinkserve.core.errors import Overloaded, RateLimited


class FairLine:
    """Places into one engine; see the module docstring."""

    def __init__(self, places: int, depth: int) -> None:
        self._free = max(1, places)
        self._depth = max(1, depth)
        self._per_key = max(1, depth // 2)
        # Keys in turn order, each with its waiters (oldest first); a key leaves when it has none.
        self._lines: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    async def enter(self, key: str) -> None:
        """Take a place, waiting for this key's turn when none is free; ``leave`` gives it back."""
        if self._free > 0 and not self._lines:
            self._free -= 1
            return
        line = self._lines.get(key)
        if self._waiting >= self._depth:
            raise Overloaded("The engine queue is full; retry later.")
        if line is not None and len(line) >= self._per_key:
            raise RateLimited(
                "Too many requests waiting for this API key, please try again later.", code="Throttling"
            )
        if line is None:
            line = self._lines[key] = deque()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.append(waiter)
        self._waiting += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # the place came as the caller went away: pass it on
            else:
                self._forget(key, waiter)
            raise

    def leave(self) -> None:
        """Give a place back: to the next key in turn, or to the free pool."""
        while self._lines:
            key, line = next(iter(self._lines.items()))
            waiter = line.popleft()
            self._waiting -= 1
            if line:
                self._lines.move_to_end(key)  # its turn is over: behind every other waiting key
            else:
                del self._lines[key]
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def _forget(self, key: str, waiter: asyncio.Future[None]) -> None:
        line = self._lines.get(key)
        if line is None or waiter not in line:
            return
        line.remove(waiter)
        self._waiting -= 1
        if not line:
            del self._lines[key]
