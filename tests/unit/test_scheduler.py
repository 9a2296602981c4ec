"""The llama.cpp engine's scheduler: admission, batch plans, room in the cache, preemption.

No model file: the KV cache, the channels and the worker's hooks are stand-ins
(tests/unit/engine_doubles.py), and ``Bench.step`` plays the worker's decode-and-sample.
"""

from __future__ import annotations

from tests.unit.engine_doubles import Bench
from thinkserve.engine.protocol import Checkpoint


def ids(seqs: object) -> list[str]:
    return [s.request.request_id for s in seqs]  # type: ignore[attr-defined]


# -- admission ----------------------------------------------------------------------------------


def test_requests_take_slots_in_arrival_order() -> None:
    b = Bench(n_seq=2, unified=False)
    for rid in "abc":
        b.submit([1, 2, 3], rid)
    b.sched.admit()
    assert ids(b.sched.active) == ["a", "b"]
    assert ids(b.sched.waiting) == ["c"]
    assert b.hooks.dequeued_count == 2
    first = b.sched.active[0]
    assert first.slot is not None and first.channel.slots == [first.slot.seq_id]  # type: ignore[attr-defined]

    b.sched.retire(first, keep_cache=True)
    b.sched.admit()
    assert ids(b.sched.active) == ["b", "c"]
    assert b.hooks.discarded == ["a"]


def test_preempted_sequences_go_before_new_requests() -> None:
    b = Bench(n_seq=2, unified=False)
    a, c = b.submit([1, 2], "a"), b.submit([3, 4], "c")
    b.sched.admit()
    b.submit([5, 6], "new")
    b.sched.preempt(c)
    assert ids(b.sched.requeued) == ["c"]
    b.sched.admit()
    assert ids(b.sched.active) == ["a", "c"]
    assert ids(b.sched.waiting) == ["new"]
    assert a.slot is not None


def test_the_head_waits_for_room_and_nobody_overtakes_it() -> None:
    b = Bench(n_seq=3, kv_size=32)
    b.submit(list(range(20)), "big")
    b.sched.admit()
    b.submit(list(range(100, 115)), "next")  # 15 tokens: 32 - 20 held leaves 12
    b.submit([1], "small")  # would fit, but stays behind the head
    b.sched.admit()
    assert ids(b.sched.active) == ["big"]
    assert ids(b.sched.waiting) == ["next", "small"]


def test_room_counts_what_running_sequences_hold_not_idle_caches() -> None:
    b = Bench(n_seq=2, kv_size=32)
    done = b.submit(list(range(30)), "done")
    b.sched.admit()
    b.step()
    b.sched.retire(done, keep_cache=True)
    assert b.pool.used_cells() == 30  # an idle cache of 30 cells
    nxt = b.submit(list(range(100, 130)), "next")
    assert b.sched.room_for(nxt)
    b.sched.admit()
    assert ids(b.sched.active) == ["next"]
    # Its prefill evicts the idle cache first.
    assert b.step() == [("next", 30)]
    assert b.pool.slots[0].cached == [] or b.pool.slots[1].cached == []

    split = Bench(n_seq=2, kv_size=32, unified=False)
    assert split.sched.room_for(split.submit(list(range(500)), "huge"))


def test_cancelled_or_unprepared_requests_are_forgotten_at_admission() -> None:
    b = Bench(n_seq=2, kv_size=20)
    b.submit(list(range(16)), "full")
    b.sched.admit()
    gone = b.submit(list(range(10)), "gone")
    gone.channel.cancelled = True  # type: ignore[misc]
    b.hooks.refuse.add("broken")
    b.submit([1, 2], "broken")
    b.sched.admit()  # no room for "gone", but a cancelled head does not wait
    assert ids(b.sched.active) == ["full"]
    assert b.hooks.prepared == ["full", "broken"]
    assert not b.sched.waiting
    assert set(b.hooks.discarded) == {"gone", "broken"}
    assert ids(b.sched.by_channel.values()) == ["full"]


def test_drop_ends_a_sequence_wherever_it_is_and_keeps_its_cells() -> None:
    b = Bench(n_seq=1)
    running, queued = b.submit([1, 2, 3], "running"), b.submit([4], "queued")
    b.sched.admit()
    b.step()
    b.sched.drop(queued)
    assert not b.sched.waiting and b.hooks.dequeued_count == 2
    b.sched.drop(running)
    assert not b.sched.active and running.slot is None
    # What was evaluated stays as an idle cache, for the continuation a canceller usually sends.
    assert (0, 0) not in b.cells.removed
    assert b.pool.slots[0].cached == [1, 2, 3] and b.pool.slots[0].owner is None
    assert b.hooks.discarded == ["queued", "running"]


def test_a_cached_prefix_is_counted_and_skipped() -> None:
    b = Bench(n_seq=1)
    first = b.submit(list(range(10)), "first")
    b.sched.admit()
    b.step(sample=99)
    b.step(sample=98)  # 99 is fed back; 98 is sampled but never evaluated
    b.sched.retire(first, keep_cache=True)
    assert b.pool.slots[0].cached == [*range(10), 99]
    second = b.submit([*range(10), 99, 5, 6], "second")
    b.sched.admit()
    assert second.cached_tokens == 11 and second.n_kv == 11
    assert b.sched.cached_prompt_tokens == 11
    assert b.step() == [("second", 2)]


# -- planning -----------------------------------------------------------------------------------


def test_prefill_is_chunked_while_others_decode() -> None:
    b = Bench(n_seq=2, kv_size=1000, n_batch=64, prefill_chunk=16)
    b.submit(list(range(10)), "chat")
    b.sched.admit()
    assert b.step() == [("chat", 10)]
    b.submit(list(range(100)), "long")
    b.sched.admit()
    # The decoding sequence goes first, then at most prefill_chunk prompt tokens.
    assert b.step() == [("chat", 1), ("long", 16)]
    assert b.step() == [("chat", 1), ("long", 16)]


def test_prefill_alone_uses_the_whole_batch() -> None:
    b = Bench(n_seq=2, kv_size=1000, n_batch=64, prefill_chunk=16)
    b.submit(list(range(100)), "long")
    b.sched.admit()
    assert b.step() == [("long", 64)]
    assert b.step() == [("long", 36)]
    assert b.step() == [("long", 1)]  # decoding now


def test_paused_sequences_are_left_out_of_the_batch() -> None:
    b = Bench(n_seq=2)
    paused = b.submit([1, 2, 3], "paused", Checkpoint(limit=0))
    b.submit([4, 5, 6], "other")
    b.sched.admit()
    b.step()
    paused.checkpoint.pause()
    assert b.step() == [("other", 1)]
    assert b.sched.runnable()
    b.sched.retire(b.sched.active[1], keep_cache=True)
    assert not b.sched.runnable() and b.sched.paused_count() == 1


def test_resume_with_nothing_pending_reevaluates_the_last_token() -> None:
    b = Bench(n_seq=1)
    seq = b.submit([1, 2, 3], "s", Checkpoint(limit=0))
    b.sched.admit()
    b.step(sample=None)  # the prompt is evaluated; the worker paused before sampling
    seq.checkpoint.pause()
    seq.checkpoint.resume()
    b.sched.resumed(seq)
    assert (0, 2) in b.cells.removed
    assert seq.n_kv == 2 and b.step(sample=None) == [("s", 1)]


# -- a full cache -------------------------------------------------------------------------------


def test_a_full_cache_delays_prefill_then_preempts_the_newest() -> None:
    b = Bench(n_seq=2, kv_size=32, n_batch=64, prefill_chunk=4)
    b.submit(list(range(20)), "old")
    b.sched.admit()
    assert b.step() == [("old", 20)]
    new = b.submit(list(range(100, 111)), "new")  # 11 tokens: exactly the room left
    b.sched.admit()
    assert b.step() == [("old", 1), ("new", 4)]
    assert b.step() == [("old", 1), ("new", 4)]
    # 2 free cells: the decoding sequence keeps its token, prefill gets what is left.
    assert b.step() == [("old", 1), ("new", 1)]
    assert b.sched.preemptions == 0
    # No cell left: the newest sequence gives way; its cells become an idle cache, then go.
    assert b.step() == [("old", 1)]
    assert b.sched.preemptions == 1
    assert new.slot is None and new.n_kv == 0
    assert ids(b.sched.requeued) == ["new"]
    assert (1, 0) in b.cells.removed
    # It waits until there is room for all of it again, and a later request waits behind it.
    b.submit([1], "later")
    b.sched.admit()
    assert ids(b.sched.active) == ["old"]
    assert ids(b.sched.waiting) == ["later"]


def test_the_victim_is_the_newest_paused_sequence_else_the_newest() -> None:
    b = Bench(n_seq=3, kv_size=1000)
    one, two, three = (b.submit([i, i], str(i)) for i in range(3))
    b.sched.admit()
    assert b.sched.pick_victim() is three
    two.checkpoint.pause()
    assert b.sched.pick_victim() is two
    b.sched.preempt(two)
    assert two.slot is None and not b.sched.requeued  # paused: requeued once resumed
    b.sched.resumed(two)
    assert ids(b.sched.requeued) == ["1"]
    b.sched.retire(three, keep_cache=False)
    assert b.sched.pick_victim() is None  # the last sequence is never preempted
    assert one.slot is not None


def test_make_room_evicts_idle_caches_before_preempting() -> None:
    b = Bench(n_seq=3, kv_size=1000)
    a, c, idle = b.submit([1, 2], "a"), b.submit([3, 4], "c"), b.submit([5, 6], "idle")
    b.sched.admit()
    b.step()
    b.sched.retire(idle, keep_cache=True)
    assert b.sched.make_room()
    assert b.sched.preemptions == 0 and all(not s.cached for s in b.pool.slots)
    assert b.sched.make_room()
    assert b.sched.preemptions == 1 and ids(b.sched.requeued) == ["c"] and c.slot is None
    # The victim's cells stayed as an idle cache: they go next, before anything else.
    assert b.sched.make_room()
    assert b.sched.preemptions == 1 and all(not s.cached for s in b.pool.slots)
    assert not b.sched.make_room()
    assert ids(b.sched.active) == ["a"] and a.slot is not None
