"""The embedded llama.cpp engine: ``engine.protocol.Engine`` over llama-cpp-python's low-level API.

``LlamaCppEngine`` loads a GGUF model into one llama.cpp context with ``n_seq`` KV-cache slots and
decodes every running sequence in shared ``llama_decode`` calls (continuous batching). All
llama.cpp work happens in one worker thread (``worker``); this module is the event loop side: it
validates and queues requests and turns the worker's events into async iterators.

Behaviour worth knowing:

- ``start()`` is synchronous: it loads the model (in the worker thread) and returns when it is
  ready, raising ``EngineFailure`` if it cannot. ``await aclose()`` (or ``close()``) stops the
  worker; sequences still running then end with ``EngineFailure``.
- ``health()`` is "starting" until ``start()`` returns, then "up" while the worker thread lives,
  "down" (with the reason) when the model failed to load or the worker crashed, and "stopped"
  once closed.
- A finished sequence leaves its KV cells in its slot; a later prompt that shares a prefix with
  them reuses them (``EngineFinished.cached_tokens``). A cancelled sequence leaves the cells it
  had evaluated too; only a failed one frees them.
- End-of-generation tokens end a sequence with ``"stop"`` (or pause it, with
  ``Checkpoint.on_end``); they are neither emitted as ``TokenEvent`` nor counted in
  ``sampled_tokens``: their text (``<|im_end|>``) is no part of the answer.
- A ``Sequence`` iterator stops after ``Paused`` unless ``resume`` was called before the next
  item was asked for, so both ``async for ... : if Paused: seq.resume(...)`` and "iterate, resume,
  iterate again" work.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence as Seq
from pathlib import Path
from types import TracebackType

from thinkserve.core.errors import EngineFailure, InvalidParameter
from thinkserve.engine.llamacpp.cpu import AmxPolicy, CpuBackend
from thinkserve.engine.llamacpp.settings import WorkerConfig
from thinkserve.engine.llamacpp.stats import LlamaCppStats
from thinkserve.engine.llamacpp.tokenizer import LlamaCppTokenizer
from thinkserve.engine.llamacpp.worker import Worker
from thinkserve.engine.protocol import (
    EngineRequest,
    EngineStats,
    Health,
)
from thinkserve.engine.queued import QueuedSequence


class LlamaCppSequence(QueuedSequence):
    """One running generation (``engine.protocol.Sequence``); its worker pushes the events."""

    def __init__(self, worker: Worker, request: EngineRequest, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._worker = worker
        self._request = request
        self._slot: int | None = None

    # -- Channel (seen by the worker) ------------------------------------------------------------

    @property
    def request(self) -> EngineRequest:
        return self._request

    def set_slot(self, slot: int | None) -> None:
        self._slot = slot

    # -- Sequence --------------------------------------------------------------------------------

    @property
    def request_id(self) -> str:
        return self._request.request_id

    @property
    def slot(self) -> int | None:
        """The KV slot (llama.cpp sequence id) the sequence was last given, if any."""
        return self._slot

    def _send_resume(self, tokens: Seq[int]) -> None:
        self._worker.resume(self, tokens)

    def _send_cancel(self) -> None:
        self._worker.cancel(self)


class LlamaCppEngine:
    """A GGUF model served with continuous batching (``engine.protocol.Engine``).

    ``n_ctx`` is the KV cache size in tokens. With a unified cache (llama.cpp's ``kv_unified``,
    the default) the ``n_seq`` slots share it and one sequence may use all of it; otherwise each
    slot gets ``n_ctx / n_seq``. ``context_length`` reports the resulting per-sequence limit.
    ``prefill_chunk`` caps the prompt tokens evaluated per step while other sequences decode.
    """

    def __init__(
        self,
        model_path: str,
        *,
        n_ctx: int = 8192,
        n_seq: int = 8,
        n_threads: int | None = None,
        n_batch: int = 512,
        max_queue: int = 64,
        prefill_chunk: int = 128,
        kv_unified: bool = True,
        n_gpu_layers: int = 0,
        flash_attn: bool | None = None,
        penalty_last_n: int = 64,
        amx: AmxPolicy = "auto",
        proof_dir: Path | None = None,
    ) -> None:
        if n_seq < 1 or n_ctx < 1 or n_batch < n_seq or max_queue < 0 or prefill_chunk < 1:
            raise ValueError("need n_seq, n_ctx, prefill_chunk >= 1, n_batch >= n_seq and max_queue >= 0")
        threads = n_threads if n_threads is not None else (os.cpu_count() or 1)
        self._config = WorkerConfig(
            model_path=model_path,
            n_ctx=n_ctx,
            n_seq=n_seq,
            n_threads=threads,
            n_batch=n_batch,
            prefill_chunk=prefill_chunk,
            kv_unified=kv_unified,
            n_gpu_layers=n_gpu_layers,
            flash_attn=flash_attn,
            penalty_last_n=penalty_last_n,
            amx=amx,
            proof_dir=proof_dir,
        )
        self._max_queue = max_queue
        self._worker = Worker(self._config)
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the model and start the worker (blocking; idempotent)."""
        if self._closed:
            raise EngineFailure("The inference engine is closed.")
        if not self._started:
            try:
                self._worker.start()
            except EngineFailure:
                self._closed = True  # the worker thread is gone; a second start cannot work
                raise
            self._started = True

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Stop the worker and free the model (blocking; idempotent)."""
        self._closed = True
        self._worker.stop()

    async def __aenter__(self) -> LlamaCppEngine:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- Engine ----------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> LlamaCppTokenizer:
        tokenizer = self._worker.tokenizer
        if tokenizer is None:
            raise EngineFailure("The inference engine is not started.")
        return tokenizer

    @property
    def context_length(self) -> int:
        if not self._started:
            raise EngineFailure("The inference engine is not started.")
        return self._worker.context_length

    def submit(self, request: EngineRequest) -> LlamaCppSequence:
        """Queue a sequence (call from the event loop that will iterate it)."""
        if not self._started or self._closed or not self._worker.alive:
            raise EngineFailure("The inference engine is not running.")
        limit = self._worker.context_length
        prompt = request.prompt
        if not 1 <= len(prompt) <= limit:
            raise InvalidParameter(f"Range of input length should be [1, {limit}]")
        if min(prompt) < 0 or max(prompt) >= self.tokenizer.n_vocab:
            raise InvalidParameter("Token id out of range.")
        if request.max_tokens < 1:
            raise InvalidParameter(f"Range of max_tokens should be [1, {limit}]", param="max_tokens")
        sequence = LlamaCppSequence(self._worker, request, asyncio.get_running_loop())
        self._worker.enqueue(sequence, self._max_queue)
        return sequence

    # -- observability ---------------------------------------------------------------------------

    def health(self) -> Health:
        if self._started and not self._closed and self._worker.alive:
            return Health("up", self.describe())
        if self._worker.load_error is not None:
            return Health("down", self._worker.load_error)
        if self._closed:
            return Health("stopped")
        if not self._started:
            return Health("starting", "The model is loading." if self._worker.alive else "Not started.")
        return Health("down", "The inference engine's worker thread stopped.")

    def snapshot(self) -> EngineStats:
        return self._worker.stats.summary()

    @property
    def stats(self) -> LlamaCppStats:
        """The counters as of the worker's last step (a cheap, immutable snapshot)."""
        return self._worker.stats

    def slot_cells(self, slot: int) -> int:
        """KV cells held by ``slot`` as of the last step."""
        cells = self._worker.stats.slot_cells
        return cells[slot] if 0 <= slot < len(cells) else 0

    @property
    def backend(self) -> CpuBackend | None:
        """The CPU backend llama.cpp runs on (None before ``start``)."""
        return self._worker.backend

    def describe(self) -> str:
        """What the engine runs on, in words (for /health and the startup log)."""
        backend = self._worker.backend
        return f"llama.cpp, {backend.reason}" if backend is not None else "llama.cpp"

    @property
    def n_seq(self) -> int:
        return self._config.n_seq
