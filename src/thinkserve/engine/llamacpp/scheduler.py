"""Continuous batching over KV slots: who runs, how many tokens each, who gives way (pure Python).

Once per worker step:

- waiting requests take a free slot (``SlotPool.claim``: the longest cached prefix), preempted
  sequences first, then new ones in arrival order; the head of the line waits rather than be
  overtaken;
- ``fit()`` plans one batch: one token per decoding sequence (the one it just sampled, or a
  resumed sequence's injected tokens), then prompt chunks of the sequences being prefilled; while
  anything is decoding, prefill is capped at ``prefill_chunk`` tokens per step so that a long
  prompt does not stall the others.

With a unified KV cache every sequence may grow to the whole context, so the cells are a shared
pool: a request is admitted only when the cells that running sequences hold leave room for all of
its tokens; idle caches are evicted least recently used first; when running sequences outgrow the
pool, prefill is delayed and, as a last resort, the newest sequence is preempted (its cells become
an idle cache and it is evaluated again later; its consumer only sees a delay). A paused sequence
gives way before a running one.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol

from thinkserve.engine.llamacpp.sequence import Channel, Decoder, SeqState
from thinkserve.engine.llamacpp.slots import Slot, SlotPool

log = logging.getLogger("thinkserve.engine.llamacpp")

#: (sequence, how many of its pending tokens go into the batch), in batch order.
Plan = list[tuple[SeqState, int]]


class SchedulerHooks(Protocol):
    """What the scheduler asks of the worker that owns the native resources."""

    def prepare(self, seq: SeqState) -> bool:
        """Make ``seq`` ready to run (its sampler) as it takes a slot; False when that failed and
        its consumer was told (the scheduler then forgets it)."""
        ...

    def discard(self, seq: SeqState) -> None:
        """Free what ``prepare`` made: the sequence is over."""
        ...

    def dequeued(self) -> None:
        """A new request left the queue (admitted or cancelled)."""
        ...


class Scheduler:
    """The sequences of one engine and the decisions about them (worker thread only)."""

    def __init__(
        self,
        pool: SlotPool,
        hooks: SchedulerHooks,
        *,
        kv_size: int,
        unified: bool,
        n_batch: int,
        prefill_chunk: int,
    ) -> None:
        self.pool = pool
        self.kv_size = kv_size
        self.unified = unified
        """One pool of ``kv_size`` cells for every slot (else llama.cpp splits it per slot)."""
        self.n_batch = n_batch
        self.prefill_chunk = prefill_chunk
        self.by_channel: dict[Channel, SeqState] = {}
        self.waiting: deque[SeqState] = deque()
        self.requeued: deque[SeqState] = deque()
        """Preempted sequences; they go before new requests."""
        self.active: list[SeqState] = []
        """Sequences holding a slot, in admission order."""
        self.preemptions = 0
        self.cached_prompt_tokens = 0
        self._hooks = hooks
        self._arrivals = 0

    # -- the lines ------------------------------------------------------------------------------

    def submit(self, channel: Channel, decoder: Decoder) -> SeqState:
        self._arrivals += 1
        seq = SeqState(channel, self._arrivals, decoder)
        self.by_channel[channel] = seq
        self.waiting.append(seq)
        return seq

    def runnable(self) -> bool:
        return any(not s.checkpoint.paused for s in self.active)

    def admissible(self) -> bool:
        return bool(self.waiting or self.requeued) and any(s.owner is None for s in self.pool.slots)

    def paused_count(self) -> int:
        return sum(1 for s in self.by_channel.values() if s.checkpoint.paused)

    def admit(self) -> None:
        while self.waiting or self.requeued:
            free = self.pool.free()
            if not free:
                return
            line = self.requeued if self.requeued else self.waiting
            seq = line[0]
            if not seq.channel.cancelled and not self.room_for(seq):
                return  # first come, first served: the head waits for cells, the rest behind it
            line.popleft()
            if line is self.waiting:
                self._hooks.dequeued()
            if seq.channel.cancelled or not self._hooks.prepare(seq):
                self.forget(seq)
                continue
            self._take_slot(seq, free)

    def room_for(self, seq: SeqState) -> bool:
        """Whether the shared cache can hold all of ``seq`` next to what running sequences hold.

        Idle caches do not count (they are evicted on demand). Without this check a sequence
        admitted into a full cache would be preempted again at once, step after step.
        """
        if not self.unified:
            return True
        held = sum(len(s.owner.tokens) for s in self.pool.slots if s.owner is not None)
        return self.kv_size - held >= len(seq.tokens)

    def _take_slot(self, seq: SeqState, free: list[Slot]) -> None:
        slot, reuse = self.pool.claim(seq, seq.tokens, free)
        seq.slot = slot
        seq.n_kv = reuse
        seq.prefill_end = len(seq.tokens)
        if seq.cached_tokens < 0:
            seq.cached_tokens = min(reuse, seq.prompt_len)
            self.cached_prompt_tokens += seq.cached_tokens
        self.active.append(seq)
        seq.channel.set_slot(slot.seq_id)

    # -- endings --------------------------------------------------------------------------------

    def release(self, seq: SeqState, *, keep_cache: bool) -> None:
        """Give the sequence's slot back; its KV cells stay as a cache or are freed."""
        slot = seq.slot
        if slot is None:
            return
        self.pool.release(slot, seq.tokens[: seq.n_kv] if keep_cache else None)
        seq.slot = None
        seq.n_kv = 0
        self.active.remove(seq)

    def forget(self, seq: SeqState) -> None:
        """The sequence is over: no slot, no sampler, no lookup entry."""
        self._hooks.discard(seq)
        self.by_channel.pop(seq.channel, None)

    def retire(self, seq: SeqState, *, keep_cache: bool) -> None:
        """The sequence ended (finished: its cells stay as a cache; failed: they are freed)."""
        self.release(seq, keep_cache=keep_cache)
        self.forget(seq)

    def drop(self, seq: SeqState) -> None:
        """Cancel, wherever the sequence is. A running sequence's evaluated cells stay as an idle
        cache, as a finished one's do: the usual canceller is a caller that has read enough (a
        complete tool call), and its next prompt continues this one."""
        if seq.slot is not None:
            self.release(seq, keep_cache=True)
        elif seq in self.waiting:
            self.waiting.remove(seq)
            self._hooks.dequeued()
        elif seq in self.requeued:
            self.requeued.remove(seq)
        self.forget(seq)

    def resumed(self, seq: SeqState) -> None:
        """``seq`` was resumed (its injected tokens appended): get it evaluated again."""
        if seq.slot is None:
            # Preempted while paused: evaluate everything again when a slot frees up.
            self.requeued.append(seq)
            return
        if seq.pending == 0 and seq.n_kv > 0:
            # Nothing to evaluate (paused before sampling, nothing injected), but sampling needs
            # logits: evaluate the last token again.
            self.pool.remove(seq.slot, seq.n_kv - 1)
            seq.n_kv -= 1

    def clear(self) -> list[SeqState]:
        """Forget every sequence at shutdown; returns them (the worker fails and frees them)."""
        every = list(self.by_channel.values())
        self.by_channel.clear()
        self.waiting.clear()
        self.requeued.clear()
        self.active.clear()
        return every

    # -- room in the cache ----------------------------------------------------------------------

    def preempt(self, seq: SeqState) -> None:
        """Free the slot of a running sequence to make room; it is re-evaluated when readmitted."""
        log.info("KV cache full: preempting sequence %s", seq.request.request_id)
        self.preemptions += 1
        # Its cells become an idle cache: evicted when the room is needed, reused if it is not.
        self.release(seq, keep_cache=True)
        if not seq.checkpoint.paused:
            self.requeued.appendleft(seq)

    def pick_victim(self) -> SeqState | None:
        """The sequence to preempt: the newest paused one, else the newest (never the last one)."""
        if len(self.active) <= 1:
            return None
        paused = [s for s in self.active if s.checkpoint.paused]
        pool = paused or self.active
        return max(pool, key=lambda s: s.arrival)

    def make_room(self) -> bool:
        """Free some cells (an idle cache, else a victim's); False when nothing can give way."""
        if self.pool.evict_lru():
            return True
        victim = self.pick_victim()
        if victim is None:
            return False
        self.preempt(victim)
        return True

    # -- the next batch -------------------------------------------------------------------------

    def plan(self) -> Plan:
        """How many pending tokens of each running sequence go into the next batch."""
        budget = self.n_batch
        decoding: Plan = []
        prefill: Plan = []
        for seq in self.active:
            if seq.checkpoint.paused or seq.pending <= 0:
                continue
            if seq.n_kv >= seq.prefill_end:
                n = min(seq.pending, budget)
                if n > 0:
                    decoding.append((seq, n))
                    budget -= n
            else:
                prefill.append((seq, seq.pending))
        if decoding:
            budget = min(budget, self.prefill_chunk)
        plan = decoding
        for seq, pending in prefill:
            n = min(pending, seq.prefill_end - seq.n_kv, budget)
            if n <= 0:
                break
            plan.append((seq, n))
            budget -= n
        return plan

    def fit(self) -> Plan:
        """A plan whose tokens fit in the free KV cells (unified cache: one pool for all slots)."""
        while True:
            plan = self.plan()
            if not self.unified or not plan:
                return plan
            free = self.kv_size - self.pool.used_cells()
            need = sum(n for _, n in plan)
            if need <= free:
                return plan
            if self.pool.evict_lru():
                continue
            # Delay prefill (it sits at the end of the plan) before touching running sequences.
            trimmed: Plan = []
            room = free
            for seq, n in plan:
                is_prefill = seq.n_kv < seq.prefill_end
                take = min(n, room) if is_prefill else n
                if take > 0:
                    trimmed.append((seq, take))
                    room -= take
            if trimmed and sum(n for _, n in trimmed) <= free:
                return trimmed
            victim = self.pick_victim()
            if victim is None:
                return plan
            self.preempt(victim)
