"""Which upstream holds a prompt's prefix in its KV cache: a bounded map of prefix hashes (pure).

A prompt is cut into blocks of ``BLOCK`` tokens; block ``i``'s key hashes block ``i`` together
with the key of block ``i - 1``, so one key stands for the whole prefix up to it (as vLLM names
its prefix-cache blocks). Routing a prompt records its keys for the upstream chosen; the next
turn of the conversation starts with the same blocks and finds that upstream::

    index.record(prompt, upstream=1, epoch=3)
    index.match(prompt + reply + next_question)  -> (1, 3, 512)   # upstream, epoch, tokens held

Only full blocks count, and the least recently used keys go first once ``capacity`` is reached.
An upstream's entries carry the epoch it had when they were made: an ejection (a restarted
server has an empty cache) bumps it and makes them stale.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence as Seq

BLOCK = 32
"""Tokens per block: small enough that a turn's shared prefix loses little to the last partial
block, large enough that hashing an 8k prompt is 256 tuple hashes."""


class PrefixIndex:
    """Prefix keys -> (upstream index, epoch), least recently used first out."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._capacity = capacity
        self._owners: OrderedDict[int, tuple[int, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._owners)

    def match(self, prompt: Seq[int]) -> tuple[int, int, int] | None:
        """The upstream that was given the longest recorded prefix of ``prompt``:
        ``(upstream, epoch, tokens)``, or None."""
        keys = _keys(prompt)
        owners = self._owners
        for i in range(len(keys) - 1, -1, -1):
            owner = owners.get(keys[i])
            if owner is not None:
                owners.move_to_end(keys[i])
                return owner[0], owner[1], (i + 1) * BLOCK
        return None

    def record(self, prompt: Seq[int], upstream: int, epoch: int) -> None:
        """Note that ``upstream`` now holds ``prompt``'s full blocks."""
        owners = self._owners
        entry = (upstream, epoch)
        for key in _keys(prompt):
            owners[key] = entry
            owners.move_to_end(key)
        while len(owners) > self._capacity:
            owners.popitem(last=False)


def _keys(prompt: Seq[int]) -> list[int]:
    keys: list[int] = []
    key = 0
    for start in range(0, len(prompt) - BLOCK + 1, BLOCK):
        # Hashes of tuples of ints are stable across runs (no per-process salt, unlike str).
        key = hash((key, tuple(prompt[start : start + BLOCK])))
        keys.append(key)
    return keys
