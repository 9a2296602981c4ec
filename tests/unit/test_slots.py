"""The llama.cpp engine's KV slots: prefix reuse, idle caches, LRU eviction (no model file)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.engine_doubles import Bench
from thinkserve.engine.llamacpp.slots import Slot, SlotPool, common_prefix


def cached_pool(*caches: list[int], suffix_ok: bool = True) -> tuple[SlotPool, Bench]:
    """A pool whose slot i idles with ``caches[i]`` (released in order: slot 0 is the LRU)."""
    bench = Bench(n_seq=len(caches), suffix_ok=suffix_ok)
    pool = bench.pool
    for slot, cache in zip(pool.slots, caches, strict=True):
        pool.release(slot, list(cache) if cache else None)
    bench.cells.removed.clear()
    return pool, bench


def claim(pool: SlotPool, bench: Bench, tokens: list[int]) -> tuple[Slot, int]:
    owner = bench.submit(tokens, "new")
    return pool.claim(owner, tokens, pool.free())


def test_the_longest_cached_prefix_wins() -> None:
    pool, bench = cached_pool([1, 2, 9], [1, 2, 3, 4, 8], [5, 6])
    slot, reuse = claim(pool, bench, [1, 2, 3, 4, 5, 6])
    assert slot.seq_id == 1
    assert reuse == 4
    # The cache's diverging tail is dropped from position 4 on; the slot is now owned.
    assert bench.cells.removed == [(1, 4)]
    assert slot.cached == [] and slot.owner is not None
    assert pool.free() == [pool.slots[0], pool.slots[2]]


def test_an_identical_prompt_keeps_one_token_to_evaluate() -> None:
    pool, bench = cached_pool([1, 2, 3])
    slot, reuse = claim(pool, bench, [1, 2, 3])
    assert (slot.seq_id, reuse) == (0, 2)
    assert bench.cells.removed == [(0, 2)]


def test_no_prefix_prefers_an_empty_slot_then_the_least_recently_used() -> None:
    pool, bench = cached_pool([7, 7], [], [8, 8])
    slot, reuse = claim(pool, bench, [1, 2])
    assert (slot.seq_id, reuse) == (1, 0)
    assert bench.cells.removed == []  # nobody's cache was touched

    pool, bench = cached_pool([7, 7], [8, 8])
    slot, reuse = claim(pool, bench, [1, 2])
    assert (slot.seq_id, reuse) == (0, 0)  # released first: least recently used
    assert bench.cells.removed == [(0, 0)]


def test_a_short_match_does_not_throw_a_long_cache_away() -> None:
    # Reusing 2 of 10 cached tokens would destroy most of that conversation: take the empty slot.
    pool, bench = cached_pool([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [])
    slot, reuse = claim(pool, bench, [1, 2, 30, 40])
    assert (slot.seq_id, reuse) == (1, 0)
    assert pool.slots[0].cached == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

    # Without an empty slot the match is still worth taking.
    pool, bench = cached_pool([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    slot, reuse = claim(pool, bench, [1, 2, 30, 40])
    assert (slot.seq_id, reuse) == (0, 2)


def test_memory_that_cannot_drop_a_suffix_starts_the_slot_over() -> None:
    pool, bench = cached_pool([1, 2, 3, 9], suffix_ok=False)
    slot, reuse = claim(pool, bench, [1, 2, 3, 4])
    assert reuse == 0
    assert bench.cells.removed == [(0, 3), (0, 0)]
    assert slot.cells == 0


def test_release_keeps_a_cache_or_frees_the_cells() -> None:
    pool, bench = cached_pool([], [])
    a, _ = claim(pool, bench, [1, 2, 3])
    b, _ = claim(pool, bench, [4, 5, 6])
    pool.release(a, [1, 2, 3, 11])
    pool.release(b, None)
    assert a.cached == [1, 2, 3, 11] and a.cells == 4 and a.owner is None
    assert b.cached == [] and (b.seq_id, 0) in bench.cells.removed
    assert a.last_used < b.last_used
    assert pool.used_cells() == 4
    assert pool.dirty == {0, 1}


def test_lru_eviction_skips_owned_slots_and_stops_when_nothing_is_idle() -> None:
    pool, bench = cached_pool([1, 1], [2, 2], [3, 3])
    claim(pool, bench, [1, 1, 5])  # slot 0 is owned again
    bench.cells.removed.clear()
    assert pool.evict_lru()
    assert bench.cells.removed == [(1, 0)] and pool.slots[1].cached == []
    assert pool.evict_lru()
    assert bench.cells.removed == [(1, 0), (2, 0)]
    assert not pool.evict_lru()


@given(st.lists(st.integers(0, 3), max_size=40), st.lists(st.integers(0, 3), max_size=40))
def test_common_prefix(a: list[int], b: list[int]) -> None:
    expected = 0
    while expected < min(len(a), len(b)) and a[expected] == b[expected]:
        expected += 1
    assert common_prefix(a, b) == expected
