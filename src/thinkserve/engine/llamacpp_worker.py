"""The llama.cpp worker thread behind ``LlamaCppEngine``: continuous batching over KV-cache slots.

One thread owns the model, the context, the ``llama_batch`` and every sampler; every blocking
llama.cpp call happens here. The event loop side talks to it through a ``queue.SimpleQueue`` of
commands, and the worker answers by scheduling ``Channel.push`` on each sequence's event loop
with ``call_soon_threadsafe`` (once per step and loop, not once per token).

Scheduling, once per step:

- commands are applied (new requests, resumes, cancels);
- waiting requests take a free slot (a llama.cpp sequence id). A slot keeps the KV cells of the
  sequence that last finished in it, so the request takes the free slot with the longest common
  prefix and only evaluates the rest of its prompt;
- one ``llama_decode`` carries the pending tokens of every running sequence: one token per
  decoding sequence (the one it just sampled, or a resumed sequence's injected tokens), then
  prompt chunks of the sequences being prefilled; while anything is decoding, prefill is capped
  at ``prefill_chunk`` tokens per step so that a long prompt does not stall the others;
- each sequence whose pending tokens were all evaluated samples from its own sampler chain
  (plain greedy, without penalties, reads the argmax of its logits row instead: same token).

With a unified KV cache every sequence may grow to the whole context, so the cells are a shared
pool: a request is admitted only when the cells that running sequences hold leave room for all
of its tokens; idle slots are evicted least recently used first; when running sequences outgrow
the pool, prefill is delayed and, as a last resort, the newest sequence is preempted (its cells
are released and it is evaluated again later; its consumer only sees a delay).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import queue
import threading
from collections import deque
from collections.abc import Sequence as Seq
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from thinkserve.core.errors import EngineFailure, InvalidParameter, Overloaded
from thinkserve.engine.base import EngineFinished, Paused, TokenEvent
from thinkserve.engine.llamacpp_cpu import CpuBackend
from thinkserve.engine.llamacpp_probe import choose_backend
from thinkserve.engine.llamacpp_state import (
    GENERIC_FAILURE,
    Cancel,
    Channel,
    Command,
    EngineStats,
    Outgoing,
    ResumeCmd,
    SeqState,
    Slot,
    Stop,
    Submit,
    WorkerConfig,
    common_prefix,
    install_native_logging,
    marker_seen,
    push_all,
)
from thinkserve.engine.llamacpp_tokenizer import LlamaCppTokenizer, StreamDecoder

log = logging.getLogger("thinkserve.engine.llamacpp")


class Worker:
    """Owns llama.cpp; ``start`` loads the model in the worker thread and waits for it."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting_count = 0
        self._accepting = False
        self._ready = threading.Event()
        self._load_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="llamacpp-worker", daemon=True)
        self.stats = EngineStats()
        # Set by _load, read-only afterwards.
        self.tokenizer: LlamaCppTokenizer | None = None
        self.context_length = 0
        self.kv_size = 0
        self.unified = False
        self.backend: CpuBackend | None = None
        # Native handles and scheduler state: worker thread only.
        self._model: Any = None
        self._logits_row: type[ctypes.Array[ctypes.c_float]] = ctypes.c_float * 1
        self._ctx: Any = None
        self._mem: Any = None
        self._batch: Any = None
        self._batch_allocated = False
        self._slots: list[Slot] = []
        self._cells: list[int] = []
        """KV cells per slot as llama.cpp last reported them."""
        self._dirty: set[int] = set()
        """Slots whose cells were removed since the last ``_publish``."""
        self._by_channel: dict[Channel, SeqState] = {}
        self._waiting: deque[SeqState] = deque()
        self._requeued: deque[SeqState] = deque()
        """Preempted sequences; they go before new requests."""
        self._active: list[SeqState] = []
        """Sequences holding a slot, in admission order."""
        self._outbox: list[tuple[Channel, Outgoing]] = []
        self._tick = 0
        self._arrivals = 0
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "prompt_tokens_evaluated",
                "generated_tokens_evaluated",
                "cached_prompt_tokens",
                "sampled_tokens",
                "injected_tokens",
                "decode_calls",
                "multi_seq_decode_calls",
                "max_batch_seqs",
                "max_batch_tokens",
                "preemptions",
            ),
            0,
        )

    # -- event loop side ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._load_error is not None:
            self._thread.join()
            raise EngineFailure(self._load_error)

    def enqueue(self, channel: Channel, max_queue: int) -> None:
        with self._lock:
            if not self._accepting:
                raise EngineFailure("The inference engine is not running.")
            if self._waiting_count >= max_queue:
                raise Overloaded("Too many requests are waiting for the model; please retry later.")
            self._waiting_count += 1
            # Inside the lock so that shutdown, which stops accepting under it, sees every submit.
            self._commands.put(Submit(channel))

    def resume(self, channel: Channel, tokens: Seq[int]) -> None:
        tokenizer = self.tokenizer
        assert tokenizer is not None
        if any(t < 0 or t >= tokenizer.n_vocab for t in tokens):
            raise InvalidParameter("Token id out of range.")
        self._commands.put(ResumeCmd(channel, tuple(tokens)))

    def cancel(self, channel: Channel) -> None:
        self._commands.put(Cancel(channel))

    def stop(self) -> None:
        """Ask the worker to fail what is pending, free llama.cpp and exit; wait for it."""
        if self._thread.is_alive():
            self._commands.put(Stop())
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- worker thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._load()
        except Exception as exc:
            log.exception("loading %s failed", self.config.model_path)
            self._load_error = str(exc) if isinstance(exc, EngineFailure) else "Loading the model failed."
            self._free_native()
            self._ready.set()
            return
        with self._lock:
            self._accepting = True
        self._ready.set()
        try:
            self._serve()
        except BaseException:
            log.exception("the llama.cpp worker crashed; failing every pending sequence")
        finally:
            self._shutdown()

    def _load(self) -> None:
        cfg = self.config
        install_native_logging()
        self.backend = choose_backend(cfg.model_path, cfg.amx, cfg.proof_dir)
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = cfg.n_gpu_layers
        mparams.use_extra_bufts = self.backend.extra_bufts
        model = llama_cpp.llama_model_load_from_file(cfg.model_path.encode("utf-8"), mparams)
        if not model:
            raise EngineFailure(f"Cannot load the model file {cfg.model_path}.")
        self._model = model
        vocab = llama_cpp.llama_model_get_vocab(model)

        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = cfg.n_ctx
        cparams.n_batch = cfg.n_batch
        cparams.n_ubatch = cfg.n_batch
        cparams.n_seq_max = cfg.n_seq
        cparams.n_threads = cfg.n_threads
        cparams.n_threads_batch = cfg.n_threads
        cparams.no_perf = True
        flash_attn = cfg.flash_attn
        if flash_attn is None and cfg.n_gpu_layers == 0:
            # llama.cpp's "auto" turns flash attention on for CPUs too, where its kernel for 2-48
            # query tokens is far slower (measured: 25 tokens over 1k cells, 15 ms against 2 ms),
            # and such batches are exactly what continuous batching and resumes produce.
            flash_attn = False
        if flash_attn is not None:
            on, off = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED, llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
            cparams.flash_attn_type = on if flash_attn else off
        fields = {field[0] for field in llama_cpp.llama_context_params._fields_}
        self.unified = cfg.kv_unified and "kv_unified" in fields
        if "kv_unified" in fields:
            cparams.kv_unified = self.unified
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            raise EngineFailure("Cannot create a llama.cpp context (out of memory?).")
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self.kv_size = int(llama_cpp.llama_n_ctx(ctx))
        # Unified: every sequence may use the whole cache. Split: llama.cpp gives each n_ctx/n_seq.
        self.context_length = int(llama_cpp.llama_n_ctx_seq(ctx))
        self._batch = llama_cpp.llama_batch_init(cfg.n_batch, 0, 1)
        self._batch_allocated = True
        for i in range(cfg.n_batch):
            self._batch.n_seq_id[i] = 1
        self._slots = [Slot(i) for i in range(cfg.n_seq)]
        self._cells = [0] * cfg.n_seq
        self.tokenizer = LlamaCppTokenizer(model, vocab)
        self._logits_row = ctypes.c_float * self.tokenizer.n_vocab
        self._publish()
        log.info(
            "loaded %s: n_ctx=%d (per sequence %d, unified=%s), n_seq=%d, n_batch=%d, threads=%d; %s",
            cfg.model_path,
            self.kv_size,
            self.context_length,
            self.unified,
            cfg.n_seq,
            cfg.n_batch,
            cfg.n_threads,
            self.backend.reason,
        )

    def _serve(self) -> None:
        while True:
            idle = not (self._runnable() or self._admissible())
            if not self._apply_commands(block=idle):
                return
            self._admit()
            if self._runnable():
                self._step()
            if not self._runnable():
                # About to wait for commands: everything must be out (running sequences have
                # their events sent by the next step, see _deliver_during_decode).
                self._deliver()

    def _deliver(self) -> None:
        # Stats first: a consumer that has seen an event also sees the step that made it.
        self._publish()
        self._flush()

    def _runnable(self) -> bool:
        return any(not s.paused for s in self._active)

    def _admissible(self) -> bool:
        return bool(self._waiting or self._requeued) and any(s.owner is None for s in self._slots)

    def _apply_commands(self, *, block: bool) -> bool:
        """Apply queued commands (waiting for one when idle); False once told to stop."""
        if not block and self._commands.empty():
            return True  # the common case between two steps, without raising queue.Empty
        try:
            cmd = self._commands.get(block=block)
        except queue.Empty:
            return True
        while True:
            if isinstance(cmd, Stop):
                return False
            self._apply(cmd)
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return True

    def _apply(self, cmd: Submit | ResumeCmd | Cancel) -> None:
        if isinstance(cmd, Submit):
            assert self.tokenizer is not None
            self._arrivals += 1
            seq = SeqState(cmd.channel, self._arrivals, StreamDecoder(self.tokenizer))
            self._by_channel[cmd.channel] = seq
            self._waiting.append(seq)
        elif isinstance(cmd, ResumeCmd):
            found = self._by_channel.get(cmd.channel)
            if found is not None and found.paused:
                self._resume(found, cmd.tokens)
        else:
            found = self._by_channel.get(cmd.channel)
            if found is not None:
                self._drop(found)

    # -- admission and slots --------------------------------------------------------------------

    def _admit(self) -> None:
        while self._waiting or self._requeued:
            free = [s for s in self._slots if s.owner is None]
            if not free:
                return
            line = self._requeued if self._requeued else self._waiting
            seq = line[0]
            if not seq.channel.cancelled and not self._room_for(seq):
                return  # first come, first served: the head waits for cells, the rest behind it
            line.popleft()
            if line is self._waiting:
                self._dequeued()
            if seq.channel.cancelled:
                self._forget(seq)
                continue
            if seq.sampler is None and not seq.greedy:
                try:
                    seq.sampler = self._make_sampler(seq)
                except EngineFailure:
                    log.exception("cannot build the sampler of %s", seq.request.request_id)
                    self._fail(seq)
                    continue
            self._take_slot(seq, free)

    def _room_for(self, seq: SeqState) -> bool:
        """Whether the shared cache can hold all of ``seq`` next to what running sequences hold.

        Idle caches do not count (they are evicted on demand). Without this check a sequence
        admitted into a full cache would be preempted again at once, step after step.
        """
        if not self.unified:
            return True
        held = sum(len(s.owner.tokens) for s in self._slots if s.owner is not None)
        return self.kv_size - held >= len(seq.tokens)

    def _seq_rm(self, slot: Slot, start: int) -> bool:
        """Drop the slot's KV cells from position ``start`` on (0: all of them)."""
        self._dirty.add(slot.seq_id)
        return bool(llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, start if start > 0 else -1, -1))

    def _dequeued(self) -> None:
        with self._lock:
            self._waiting_count -= 1

    def _take_slot(self, seq: SeqState, free: list[Slot]) -> None:
        best, common = free[0], -1
        best_key: tuple[int, bool, int] = (-1, False, 0)
        for slot in free:
            n = common_prefix(slot.cached, seq.tokens)
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
        reuse = min(common, len(seq.tokens) - 1)
        if reuse < len(best.cached) and not self._seq_rm(best, reuse):
            # Some memory types (recurrent) cannot drop a suffix; start the slot over.
            self._seq_rm(best, 0)
            reuse = 0
        best.cached = []
        best.owner = seq
        seq.slot = best
        seq.n_kv = reuse
        seq.prefill_end = len(seq.tokens)
        if seq.cached_tokens < 0:
            seq.cached_tokens = min(reuse, seq.prompt_len)
            self._counters["cached_prompt_tokens"] += seq.cached_tokens
        self._active.append(seq)
        seq.channel.set_slot(best.seq_id)

    def _release(self, seq: SeqState, *, keep_cache: bool) -> None:
        """Give the sequence's slot back; its KV cells stay as a cache or are freed."""
        slot = seq.slot
        if slot is None:
            return
        self._tick += 1
        slot.owner = None
        slot.last_used = self._tick
        if keep_cache:
            slot.cached = seq.tokens[: seq.n_kv]
        else:
            slot.cached = []
            self._seq_rm(slot, 0)
        seq.slot = None
        seq.n_kv = 0
        self._active.remove(seq)

    def _forget(self, seq: SeqState) -> None:
        """The sequence is over: no slot, no sampler, no lookup entry."""
        if seq.sampler is not None:
            llama_cpp.llama_sampler_free(seq.sampler)
            seq.sampler = None
        self._by_channel.pop(seq.channel, None)

    def _drop(self, seq: SeqState) -> None:
        """Cancel: free everything, emit nothing (the consumer already stopped listening)."""
        if seq.slot is not None:
            self._release(seq, keep_cache=False)
        elif seq in self._waiting:
            self._waiting.remove(seq)
            self._dequeued()
        elif seq in self._requeued:
            self._requeued.remove(seq)
        self._forget(seq)

    def _finish(self, seq: SeqState, reason: str) -> None:
        assert reason in ("stop", "length")
        self._emit(
            seq,
            EngineFinished(
                "stop" if reason == "stop" else "length",
                prompt_tokens=seq.prompt_len,
                cached_tokens=max(seq.cached_tokens, 0),
                sampled_tokens=seq.sampled,
            ),
        )
        self._release(seq, keep_cache=True)
        self._forget(seq)

    def _fail(self, seq: SeqState) -> None:
        self._emit(seq, EngineFailure(GENERIC_FAILURE))
        if seq.slot is not None:
            self._release(seq, keep_cache=False)
        self._forget(seq)

    def _preempt(self, seq: SeqState) -> None:
        """Free the slot of a running sequence to make room; it is re-evaluated when readmitted."""
        log.info("KV cache full: preempting sequence %s", seq.request.request_id)
        self._counters["preemptions"] += 1
        # Its cells become an idle cache: evicted when the room is needed, reused if it is not.
        self._release(seq, keep_cache=True)
        if not seq.paused:
            self._requeued.appendleft(seq)

    def _evict_idle(self) -> bool:
        idle = [s for s in self._slots if s.owner is None and s.cached]
        if not idle:
            return False
        victim = min(idle, key=lambda s: s.last_used)
        self._seq_rm(victim, 0)
        victim.cached = []
        return True

    # -- sampling -------------------------------------------------------------------------------

    def _make_sampler(self, seq: SeqState) -> Any:
        sp = seq.request.sampling
        assert self.tokenizer is not None
        n_vocab = self.tokenizer.n_vocab
        last_n = self.config.penalty_last_n
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if not chain:
            raise EngineFailure("Cannot create a sampler.")
        if sp.repetition_penalty != 1.0:
            rep = llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, sp.repetition_penalty, 0.0, 0.0)
            # The repetition penalty covers the prompt too (as in transformers and vLLM); the
            # presence penalty below only sees generated tokens.
            for t in seq.tokens[max(0, seq.prompt_len - last_n) : seq.prompt_len]:
                llama_cpp.llama_sampler_accept(rep, t)
            llama_cpp.llama_sampler_chain_add(chain, rep)
        if sp.presence_penalty != 0.0:
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, 1.0, 0.0, sp.presence_penalty)
            )
        if sp.temperature <= 0.0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
            return chain
        # transformers' order (temperature, top-k, top-p); top-k goes first because it commutes
        # with temperature and leaves the rest of the chain 20 candidates instead of the vocab.
        if sp.top_k > 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(sp.top_k))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(sp.temperature))
        if sp.top_p < 1.0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(sp.top_p, 1))
        seed = llama_cpp.LLAMA_DEFAULT_SEED if sp.seed is None else sp.seed & 0xFFFFFFFF
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed))
        return chain

    # -- one step -------------------------------------------------------------------------------

    def _plan(self) -> list[tuple[SeqState, int]]:
        """How many pending tokens of each running sequence go into the next batch."""
        budget = self.config.n_batch
        decoding: list[tuple[SeqState, int]] = []
        prefill: list[tuple[SeqState, int]] = []
        for seq in self._active:
            if seq.paused or seq.pending <= 0:
                continue
            if seq.n_kv >= seq.prefill_end:
                n = min(seq.pending, budget)
                if n > 0:
                    decoding.append((seq, n))
                    budget -= n
            else:
                prefill.append((seq, seq.pending))
        if decoding:
            budget = min(budget, self.config.prefill_chunk)
        plan = decoding
        for seq, pending in prefill:
            n = min(pending, seq.prefill_end - seq.n_kv, budget)
            if n <= 0:
                break
            plan.append((seq, n))
            budget -= n
        return plan

    def _fit(self) -> list[tuple[SeqState, int]]:
        """A plan whose tokens fit in the free KV cells (unified cache: one pool for all slots)."""
        while True:
            plan = self._plan()
            if not self.unified or not plan:
                return plan
            free = self.kv_size - sum(s.cells for s in self._slots)
            need = sum(n for _, n in plan)
            if need <= free:
                return plan
            if self._evict_idle():
                continue
            # Delay prefill (it sits at the end of the plan) before touching running sequences.
            trimmed: list[tuple[SeqState, int]] = []
            room = free
            for seq, n in plan:
                is_prefill = seq.n_kv < seq.prefill_end
                take = min(n, room) if is_prefill else n
                if take > 0:
                    trimmed.append((seq, take))
                    room -= take
            if trimmed and sum(n for _, n in trimmed) <= free:
                return trimmed
            victim = self._pick_victim()
            if victim is None:
                return plan
            self._preempt(victim)

    def _pick_victim(self) -> SeqState | None:
        if len(self._active) <= 1:
            return None
        paused = [s for s in self._active if s.paused]
        pool = paused or self._active
        return max(pool, key=lambda s: s.arrival)

    def _step(self) -> None:
        plan = self._fit()
        if not plan:
            self._deliver()
            return
        batch = self._batch
        outputs: list[tuple[SeqState, int]] = []
        i = 0
        for seq, n in plan:
            assert seq.slot is not None
            sid = seq.slot.seq_id
            start = seq.n_kv
            toks = seq.tokens
            for pos in range(start, start + n):
                batch.token[i] = toks[pos]
                batch.pos[i] = pos
                batch.seq_id[i][0] = sid
                batch.logits[i] = 0
                i += 1
            if start + n == len(toks):
                batch.logits[i - 1] = 1
                outputs.append((seq, i - 1))
        batch.n_tokens = i

        # _deliver_during_decode: the previous step's events go out right before the decode
        # rather than right after the sampling, so that the event loop handles them while
        # llama_decode runs without the GIL, not while this thread waits for the next step.
        self._deliver()
        rc = int(llama_cpp.llama_decode(self._ctx, batch))
        if rc != 0:
            self._decode_failed(rc, plan)
            return

        c = self._counters
        c["decode_calls"] += 1
        if len(plan) > 1:
            c["multi_seq_decode_calls"] += 1
        c["max_batch_seqs"] = max(c["max_batch_seqs"], len(plan))
        c["max_batch_tokens"] = max(c["max_batch_tokens"], i)
        for seq, n in plan:
            prompt_part = max(0, min(seq.n_kv + n, seq.prompt_len) - seq.n_kv)
            c["prompt_tokens_evaluated"] += prompt_part
            c["generated_tokens_evaluated"] += n - prompt_part
            seq.n_kv += n
        for seq, index in outputs:
            self._sample(seq, index)

    def _decode_failed(self, rc: int, plan: list[tuple[SeqState, int]]) -> None:
        if rc == 1:
            # No room in the KV cache despite the accounting (fragmentation?): make some, retry.
            log.warning("llama_decode found no KV slot for %d tokens; freeing cells", sum(n for _, n in plan))
            if self._evict_idle():
                return
            victim = self._pick_victim()
            if victim is not None:
                self._preempt(victim)
                return
        # -1 (invalid batch) or a fatal error: the batch's sequences cannot be trusted any more.
        # Fatal errors may leave part of the batch in the cache, so their cells are freed whole.
        log.error(
            "llama_decode returned %d for a batch of %d sequences (%s)",
            rc,
            len(plan),
            ", ".join(seq.request.request_id for seq, _ in plan),
        )
        for seq, _ in plan:
            self._fail(seq)

    def _sample(self, seq: SeqState, index: int) -> None:
        request = seq.request
        checkpoint = request.checkpoint
        if seq.armed and checkpoint is not None and seq.sampled >= checkpoint.limit:
            # A zero limit: pause before the first sample.
            self._pause(seq)
            return
        assert self.tokenizer is not None
        if seq.greedy:
            # What the greedy sampler computes (the first maximum), without copying the whole
            # vocabulary into a candidate array first: 15 us instead of 160 us for 152k logits.
            token = int(self._logits(index).argmax())
        else:
            token = int(llama_cpp.llama_sampler_sample(seq.sampler, self._ctx, index))
        if self.tokenizer.is_eog(token):
            # Neither emitted nor counted (its text, <|im_end|>, is no part of the answer), and
            # not kept: the sequence either ends or, with on_end, continues from the token before.
            if seq.armed and checkpoint is not None and checkpoint.on_end:
                self._pause(seq, at_end=True)
            else:
                self._finish(seq, "stop")
            return
        seq.sampled += 1
        self._counters["sampled_tokens"] += 1
        seq.tokens.append(token)
        # The sampled token needs a cell of its own before anything can follow it.
        final = seq.sampled >= request.max_tokens or len(seq.tokens) > self.context_length
        text = seq.decoder.feed(token)
        if final:
            text += seq.decoder.flush()
        self._emit(seq, TokenEvent(token, text))
        if final:
            self._finish(seq, "length")
            return
        if seq.armed and checkpoint is not None:
            if token == checkpoint.until_token or marker_seen(seq, checkpoint.until_text, text):
                seq.armed = False
            elif seq.sampled >= checkpoint.limit:
                self._pause(seq)

    def _logits(self, index: int) -> npt.NDArray[np.float32]:
        row = llama_cpp.llama_get_logits_ith(self._ctx, index)
        if not row:
            raise EngineFailure(f"llama.cpp has no logits for batch index {index}")
        # A view, no copy; a prebuilt array type is 3x cheaper than np.ctypeslib.as_array.
        view = memoryview(self._logits_row.from_address(ctypes.addressof(row.contents)))
        return np.frombuffer(view, np.float32)

    def _pause(self, seq: SeqState, *, at_end: bool = False) -> None:
        seq.paused = True
        seq.armed = False
        self._emit(seq, Paused(at_end=at_end))

    def _resume(self, seq: SeqState, tokens: tuple[int, ...]) -> None:
        seq.paused = False
        for token in tokens:
            seq.tokens.append(token)
            self._emit(seq, TokenEvent(token, seq.decoder.feed(token), injected=True))
        self._counters["injected_tokens"] += len(tokens)
        if len(seq.tokens) > self.context_length:
            self._finish(seq, "length")
            return
        if seq.slot is None:
            # Preempted while paused: evaluate everything again when a slot frees up.
            self._requeued.append(seq)
            return
        if seq.pending == 0 and seq.n_kv > 0:
            # Nothing to evaluate (paused before sampling, nothing injected), but sampling needs
            # logits: evaluate the last token again.
            self._seq_rm(seq.slot, seq.n_kv - 1)
            seq.n_kv -= 1

    # -- delivery, stats, shutdown --------------------------------------------------------------

    def _emit(self, seq: SeqState, item: Outgoing) -> None:
        self._outbox.append((seq.channel, item))

    def _flush(self) -> None:
        if not self._outbox:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Channel, Outgoing]]] = {}
        for channel, item in self._outbox:
            by_loop.setdefault(channel.loop, []).append((channel, item))
        self._outbox = []
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(push_all, items)
            except RuntimeError:
                # The loop is closed: nobody is listening to these sequences any more.
                log.debug("dropping %d events for a closed event loop", len(items))

    def _publish(self) -> None:
        mem = self._mem
        cells = self._cells
        for slot in self._slots:
            # Ask llama.cpp itself, but only about slots that can have changed since last time.
            if slot.owner is not None or slot.seq_id in self._dirty:
                lo = int(llama_cpp.llama_memory_seq_pos_min(mem, slot.seq_id))
                hi = int(llama_cpp.llama_memory_seq_pos_max(mem, slot.seq_id))
                cells[slot.seq_id] = hi - lo + 1 if lo >= 0 else 0
        self._dirty.clear()
        with self._lock:
            waiting = self._waiting_count
        self.stats = EngineStats(
            **self._counters,
            active_sequences=len(self._active),
            paused_sequences=sum(1 for s in self._by_channel.values() if s.paused),
            waiting=waiting + len(self._requeued),
            slot_cells=tuple(cells),
            kv_size=self.kv_size,
        )

    def _shutdown(self) -> None:
        with self._lock:
            self._accepting = False
        # Whatever is still queued or running gets an error instead of silence.
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                break
            if isinstance(cmd, Submit):
                self._outbox.append((cmd.channel, EngineFailure(GENERIC_FAILURE)))
        for seq in list(self._by_channel.values()):
            self._emit(seq, EngineFailure(GENERIC_FAILURE))
            if seq.sampler is not None:
                llama_cpp.llama_sampler_free(seq.sampler)
                seq.sampler = None
        self._by_channel.clear()
        self._waiting.clear()
        self._requeued.clear()
        self._active.clear()
        with self._lock:
            self._waiting_count = 0
        try:
            self._flush()
        finally:
            if self.tokenizer is not None:
                self.tokenizer.close()
            self._free_native()
            self.stats = EngineStats(kv_size=self.kv_size)

    def _free_native(self) -> None:
        if self._batch_allocated:
            llama_cpp.llama_batch_free(self._batch)
            self._batch_allocated = False
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
            self._mem = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None
