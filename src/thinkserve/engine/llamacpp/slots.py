"""KV-cache slots with prefix reuse (pure Python; the cells themselves are behind ``KvCells``).

A slot is a llama.cpp sequence id. When its sequence ends, the slot keeps the KV cells of the
tokens that were evaluated, as an idle cache: a later prompt that starts with those tokens takes
that slot and evaluates only the rest. Free slots are chosen by the longest common prefix; idle
caches are evicted least recently used first when the cells are needed::

    pool = SlotPool(2, cells)
    slot, reuse = pool.claim(seq, [1, 2, 3, 4], pool.free())   # reuse: tokens already in cells
    ...
    pool.release(slot, [1, 2, 3, 4, 9])                       # idle, caching 5 tokens
"""

from __future__ import annotations

from typing import Protocol

from thinkserve.engine.llamacpp.sequence import SeqState


class KvCells(Protocol):
    """The KV cache as the slots see it (``native.Native`` in the engine, a fake in tests)."""

    def remove(self, seq_id: int, start: int) -> bool:
        """Drop the cells of ``seq_id`` from position ``start`` on (0: all of them); False when
        this memory cannot drop a suffix (recurrent models)."""
        ...


class Slot:
    """A llama.cpp sequence id and the tokens whose KV cells it holds."""

    __slots__ = ("cached", "last_used", "owner", "seq_id")

    def __init__(self, seq_id: int) -> None:
        self.seq_id = seq_id
        self.cached: list[int] = []
        """Tokens in the KV cache while the slot is idle (the owner's ``tokens[:n_kv]`` otherwise)."""
        self.owner: SeqState | None = None
        self.last_used = 0

    @property
    def cells(self) -> int:
        return self.owner.n_kv if self.owner is not None else len(self.cached)


class SlotPool:
    """The ``n_seq`` slots of one context, owned by the worker thread."""

    def __init__(self, n_seq: int, cells: KvCells) -> None:
        self.slots = [Slot(i) for i in range(n_seq)]
        self.dirty: set[int] = set()
        """Slots whose cells were removed since the worker last read the cell counts."""
        self._cells = cells
        self._tick = 0

    def free(self) -> list[Slot]:
        return [s for s in self.slots if s.owner is None]

    def used_cells(self) -> int:
        """Cells held by running sequences and idle caches together."""
        return sum(s.cells for s in self.slots)

    def remove(self, slot: Slot, start: int) -> bool:
        """Drop the slot's KV cells from position ``start`` on (0: all of them)."""
        self.dirty.add(slot.seq_id)
        return self._cells.remove(slot.seq_id, start)

    def claim(self, owner: SeqState, tokens: list[int], free: list[Slot]) -> tuple[Slot, int]:
        """Give ``owner`` the free slot that caches most of ``tokens``; returns it and how many
        leading tokens are already in its cells (always fewer than ``len(tokens)``)."""
        best, common = free[0], -1
        best_key: tuple[int, bool, int] = (-1, False, 0)
        for slot in free:
            n = common_prefix(slot.cached, tokens)
            # Longest prefix first; among equals an empty slot (keeps other caches), then the LRU.
            key = (n, not slot.cached, -slot.last_used)
            if key > best_key:
                best, best_key, common = slot, key, n
        if 2 * common < len(best.cached):
            # Reusing this little would throw most of another conversation's cache away: an empty
            # slot, if there is one, costs nothing.
            empty = next((s for s in free if not s.cached), None)
            if empty is not None:
                best, common = empty, 0
        # Keep at least one token to evaluate: sampling needs fresh logits.
        reuse = min(common, len(tokens) - 1)
        if reuse < len(best.cached) and not self.remove(best, reuse):
            # Some memory types (recurrent) cannot drop a suffix; start the slot over.
            self.remove(best, 0)
            reuse = 0
        best.cached = []
        best.owner = owner
        return best, reuse

    def release(self, slot: Slot, cached: list[int] | None) -> None:
        """The owner is done with ``slot``: its cells stay as an idle cache of ``cached``, or are
        freed (None)."""
        self._tick += 1
        slot.owner = None
        slot.last_used = self._tick
        if cached is not None:
            slot.cached = cached
        else:
            slot.cached = []
            self.remove(slot, 0)

    def evict_lru(self) -> bool:
        """Free the cells of the least recently used idle cache; False when there is none."""
        idle = [s for s in self.slots if s.owner is None and s.cached]
        if not idle:
            return False
        victim = min(idle, key=lambda s: s.last_used)
        self.remove(victim, 0)
        victim.cached = []
        return True


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n
    # Binary search on slice equality: list comparison runs in C, a Python loop would not.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
