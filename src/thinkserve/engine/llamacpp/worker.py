"""The llama.cpp worker thread behind ``LlamaCppEngine``: commands in, decode steps, events out.

One thread owns the model, the context, the ``llama_batch`` and every sampler; every blocking
llama.cpp call happens here. The event loop side talks to it through a ``queue.SimpleQueue`` of
commands, and the worker answers by scheduling ``Channel.push`` on each sequence's event loop
with ``call_soon_threadsafe`` (once per step and loop, not once per token).

Each step applies the commands (new requests, resumes, cancels), lets the ``Scheduler`` admit
waiting requests and plan a batch, runs one ``llama_decode`` over it, and samples every sequence
whose pending tokens were all evaluated from its own sampler chain (plain greedy, without
penalties, reads the argmax of its logits row instead: same token).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Sequence as Seq
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from thinkserve.core.errors import EngineFailure, InvalidParameter
from thinkserve.engine.llamacpp.commands import Cancel, CommandQueue, ResumeCmd, Stop, Submit
from thinkserve.engine.llamacpp.cpu import CpuBackend
from thinkserve.engine.llamacpp.grammar import ConstraintState
from thinkserve.engine.llamacpp.native import Native
from thinkserve.engine.llamacpp.sampler import build_sampler, free_sampler
from thinkserve.engine.llamacpp.scheduler import Plan, Scheduler
from thinkserve.engine.llamacpp.sequence import GENERIC_FAILURE, Channel, Outgoing, SeqState, send
from thinkserve.engine.llamacpp.settings import WorkerConfig
from thinkserve.engine.llamacpp.slots import SlotPool
from thinkserve.engine.llamacpp.stats import STEP_COUNTERS, LlamaCppStats
from thinkserve.engine.llamacpp.tokenizer import LlamaCppTokenizer, StreamDecoder
from thinkserve.engine.protocol import EngineFinished, Paused, TokenEvent

log = logging.getLogger("thinkserve.engine.llamacpp")


class Worker:
    """Owns llama.cpp; ``start`` loads the model in the worker thread and waits for it."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self._commands = CommandQueue()
        self._ready = threading.Event()
        self.load_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="llamacpp-worker", daemon=True)
        self.stats = LlamaCppStats()
        # Set by _load, read-only afterwards.
        self.tokenizer: LlamaCppTokenizer | None = None
        self.context_length = 0
        self.kv_size = 0
        self.backend: CpuBackend | None = None
        # Native handles and scheduler state: worker thread only.
        self._native: Native | None = None
        self._ctx: Any = None
        self._batch: Any = None
        self._fill: Callable[[Plan], tuple[int, list[tuple[SeqState, int]]]] = _not_loaded
        self._native_logits: Callable[[int], npt.NDArray[np.float32]] = _not_loaded
        self._scheduler: Scheduler | None = None
        self._cells: list[int] = []
        """KV cells per slot as llama.cpp last reported them."""
        self._outbox: list[tuple[Channel, Outgoing]] = []
        self._counters = dict.fromkeys(STEP_COUNTERS, 0)

    # -- event loop side ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self.load_error is not None:
            self._thread.join()
            raise EngineFailure(self.load_error)

    def enqueue(self, channel: Channel, max_queue: int) -> None:
        self._commands.submit(channel, max_queue)

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
            self.load_error = str(exc) if isinstance(exc, EngineFailure) else "Loading the model failed."
            self._free_native()
            self._ready.set()
            return
        self._commands.open()
        self._ready.set()
        try:
            self._serve()
        except BaseException:
            log.exception("the llama.cpp worker crashed; failing every pending sequence")
        finally:
            self._shutdown()

    def _load(self) -> None:
        cfg = self.config
        native = self._native = Native.load(cfg)
        self.backend = native.backend
        self._ctx, self._batch = native.ctx, native.batch
        self._fill, self._native_logits = native.fill, native.logits
        self.kv_size = native.kv_size
        self.context_length = native.context_length
        pool = SlotPool(cfg.n_seq, native)
        self._scheduler = Scheduler(
            pool,
            self,
            kv_size=native.kv_size,
            unified=native.unified,
            n_batch=cfg.n_batch,
            prefill_chunk=cfg.prefill_chunk,
        )
        self._cells = [0] * cfg.n_seq
        self.tokenizer = LlamaCppTokenizer(native.model, native.vocab)
        self._publish()
        log.info(
            "loaded %s: n_ctx=%d (per sequence %d, unified=%s), n_seq=%d, n_batch=%d, threads=%d; %s",
            cfg.model_path,
            self.kv_size,
            self.context_length,
            native.unified,
            cfg.n_seq,
            cfg.n_batch,
            cfg.n_threads,
            native.backend.reason if native.backend is not None else "built-in backend",
        )

    def _serve(self) -> None:
        sched = self._scheduler
        assert sched is not None
        while True:
            idle = not (sched.runnable() or sched.admissible())
            if not self._apply_commands(block=idle):
                return
            sched.admit()
            if sched.runnable():
                self._step()
            if not sched.runnable():
                # About to wait for commands: everything must be out (running sequences have
                # their events sent by the next step, see _deliver_during_decode).
                self._deliver()

    def _deliver(self) -> None:
        # Stats first: a consumer that has seen an event also sees the step that made it.
        self._publish()
        self._flush()

    def _apply_commands(self, *, block: bool) -> bool:
        """Apply queued commands (waiting for one when idle); False once told to stop."""
        cmd = self._commands.get(block=block)
        while cmd is not None:
            if isinstance(cmd, Stop):
                return False
            self._apply(cmd)
            cmd = self._commands.get(block=False)
        return True

    def _apply(self, cmd: Submit | ResumeCmd | Cancel) -> None:
        sched = self._scheduler
        assert sched is not None
        if isinstance(cmd, Submit):
            assert self.tokenizer is not None
            sched.submit(cmd.channel, StreamDecoder(self.tokenizer))
        elif isinstance(cmd, ResumeCmd):
            found = sched.by_channel.get(cmd.channel)
            if found is not None and found.checkpoint.paused:
                self._resume(found, cmd.tokens)
        else:
            # The answer to every cancel, even of a sequence already gone (its end was sent and
            # this one is dropped, or the scheduler skipped it as cancelled before it ran):
            # ``settle`` waits for it to know that no token is still on its way.
            found = sched.by_channel.get(cmd.channel)
            sampled, cached = (0, 0) if found is None else (found.sampled, max(found.cached_tokens, 0))
            prompt = len(cmd.channel.request.prompt)
            self._outbox.append((cmd.channel, EngineFinished("cancelled", prompt, cached, sampled)))
            if found is not None:
                sched.drop(found)

    # -- SchedulerHooks -------------------------------------------------------------------------

    def prepare(self, seq: SeqState) -> bool:
        if seq.constraint is None and seq.request.constraint is not None:
            seq.constraint = ConstraintState(seq.request.constraint)
        if seq.sampler is None and not seq.greedy:
            assert self.tokenizer is not None
            try:
                seq.sampler = build_sampler(seq.request, self.tokenizer.n_vocab, self.config.penalty_last_n)
            except EngineFailure:
                log.exception("cannot build the sampler of %s", seq.request.request_id)
                self._emit(seq, EngineFailure(GENERIC_FAILURE))
                return False
        return True

    def discard(self, seq: SeqState) -> None:
        if seq.sampler is not None:
            free_sampler(seq.sampler)
            seq.sampler = None
        if seq.constraint is not None:
            seq.constraint.free()

    def _native_vocab(self) -> Any:
        assert self._native is not None
        return self._native.vocab

    def dequeued(self) -> None:
        self._commands.dequeued()

    # -- one step -------------------------------------------------------------------------------

    def _step(self) -> None:
        assert self._scheduler is not None
        plan = self._scheduler.fit()
        if not plan:
            self._deliver()
            return
        i, outputs = self._fill(plan)
        # _deliver_during_decode: the previous step's events go out right before the decode
        # rather than right after the sampling, so that the event loop handles them while
        # llama_decode runs without the GIL, not while this thread waits for the next step.
        self._deliver()
        rc = int(llama_cpp.llama_decode(self._ctx, self._batch))
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

    def _decode_failed(self, rc: int, plan: Plan) -> None:
        assert self._scheduler is not None
        if rc == 1:
            # No room in the KV cache despite the accounting (fragmentation?): make some, retry.
            log.warning("llama_decode found no KV slot for %d tokens; freeing cells", sum(n for _, n in plan))
            if self._scheduler.make_room():
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
        gate = seq.checkpoint
        if gate.armed and seq.sampled >= gate.limit:
            # A zero limit: pause before the first sample.
            self._pause(seq)
            return
        assert self.tokenizer is not None
        constraint: ConstraintState | None = seq.constraint
        token = -1
        if constraint is not None and constraint.active:
            try:
                if constraint.ready(
                    request,
                    self._native_vocab(),
                    self.tokenizer.n_vocab,
                    self.config.penalty_last_n,
                    self.tokenizer.special_ids,
                ):
                    token = constraint.sample(self._native_logits(index))
            except EngineFailure as exc:
                log.error("request %s: %s", request.request_id, exc)
                self._fail(seq)
                return
        if token < 0:
            token = self._free_token(seq, index)
        if self.tokenizer.is_eog(token):
            # Neither emitted nor counted (its text, <|im_end|>, is no part of the answer), and
            # not kept: the sequence either ends or, with on_end, continues from the token before.
            if gate.pauses_at_end():
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
        if constraint is not None:
            constraint.saw(token, text)
        if final:
            self._finish(seq, "length")
            return
        if gate.armed and gate.after(token, text, seq.sampled):
            self._pause(seq)

    def _free_token(self, seq: SeqState, index: int) -> int:
        """The next token under the request's own sampling, no grammar."""
        if seq.greedy:
            # What the greedy sampler computes (the first maximum), without copying the whole
            # vocabulary into a candidate array first: 15 us instead of 160 us for 152k logits.
            return int(self._native_logits(index).argmax())
        return int(llama_cpp.llama_sampler_sample(seq.sampler, self._ctx, index))

    # -- sequence transitions -------------------------------------------------------------------

    def _pause(self, seq: SeqState, *, at_end: bool = False) -> None:
        seq.checkpoint.pause()
        self._emit(seq, Paused(at_end=at_end))

    def _resume(self, seq: SeqState, tokens: tuple[int, ...]) -> None:
        assert self._scheduler is not None
        seq.checkpoint.resume()
        for token in tokens:
            seq.tokens.append(token)
            text = seq.decoder.feed(token)
            self._emit(seq, TokenEvent(token, text, injected=True))
            if seq.constraint is not None:
                seq.constraint.saw(token, text)
        self._counters["injected_tokens"] += len(tokens)
        if len(seq.tokens) > self.context_length:
            self._finish(seq, "length")
            return
        self._scheduler.resumed(seq)

    def _finish(self, seq: SeqState, reason: str) -> None:
        assert reason in ("stop", "length")
        assert self._scheduler is not None
        self._emit(
            seq,
            EngineFinished(
                "stop" if reason == "stop" else "length",
                prompt_tokens=seq.prompt_len,
                cached_tokens=max(seq.cached_tokens, 0),
                sampled_tokens=seq.sampled,
            ),
        )
        self._scheduler.retire(seq, keep_cache=True)

    def _fail(self, seq: SeqState) -> None:
        assert self._scheduler is not None
        self._emit(seq, EngineFailure(GENERIC_FAILURE))
        self._scheduler.retire(seq, keep_cache=False)

    # -- delivery, stats, shutdown --------------------------------------------------------------

    def _emit(self, seq: SeqState, item: Outgoing) -> None:
        self._outbox.append((seq.channel, item))

    def _flush(self) -> None:
        if self._outbox:
            outbox, self._outbox = self._outbox, []
            send(outbox)

    def _publish(self) -> None:
        sched, native = self._scheduler, self._native
        assert sched is not None and native is not None
        cells = self._cells
        dirty = sched.pool.dirty
        for slot in sched.pool.slots:
            # Ask llama.cpp itself, but only about slots that can have changed since last time.
            if slot.owner is not None or slot.seq_id in dirty:
                cells[slot.seq_id] = native.cells(slot.seq_id)
        dirty.clear()
        waiting = self._commands.waiting
        self.stats = LlamaCppStats(
            **self._counters,
            cached_prompt_tokens=sched.cached_prompt_tokens,
            preemptions=sched.preemptions,
            active_sequences=len(sched.active),
            paused_sequences=sched.paused_count(),
            waiting=waiting + len(sched.requeued),
            slot_cells=tuple(cells),
            kv_size=self.kv_size,
        )

    def _shutdown(self) -> None:
        # Whatever is still queued or running gets an error instead of silence.
        for channel in self._commands.close():
            self._outbox.append((channel, EngineFailure(GENERIC_FAILURE)))
        if self._scheduler is not None:
            for seq in self._scheduler.clear():
                self._emit(seq, EngineFailure(GENERIC_FAILURE))
                self.discard(seq)
        try:
            self._flush()
        finally:
            if self.tokenizer is not None:
                self.tokenizer.close()
            self._free_native()
            self.stats = LlamaCppStats(kv_size=self.kv_size)

    def _free_native(self) -> None:
        self._ctx = self._batch = None
        if self._native is not None:
            self._native.free()
            self._native = None


def _not_loaded(*args: Any) -> Any:
    raise EngineFailure("The inference engine is not started.")
