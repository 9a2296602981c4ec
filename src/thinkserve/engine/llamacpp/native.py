"""Loading and freeing llama.cpp's model, context and batch (worker thread only).

Loading first picks the CPU backend (``probe.choose_backend``: the best variant for this CPU, AMX
kernels only where proven), then loads the model and creates the context.

``Native.load(config)`` returns the handles of one loaded model or raises ``EngineFailure``
(having freed whatever it had made); ``free()`` releases them, once. Besides the handles it gives
what a decode step needs (``fill`` the batch from a plan, read ``logits``) and the KV-cache
operations of the slot pool (``remove``, ``cells``).

On CPU-only builds flash attention is off unless asked for: llama.cpp's "auto" would enable it,
and its CPU kernel is several times slower for the 2-48-token batches that batched decoding and
resumes produce.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.llamacpp.cpu import CpuBackend
from thinkserve.engine.llamacpp.probe import choose_backend
from thinkserve.engine.llamacpp.scheduler import Plan
from thinkserve.engine.llamacpp.sequence import SeqState
from thinkserve.engine.llamacpp.settings import WorkerConfig

_native_log = logging.getLogger("thinkserve.engine.llamacpp.native")


class Native:
    """The llama.cpp handles of one loaded model."""

    def __init__(self) -> None:
        self.model: Any = None
        self.vocab: Any = None
        self.ctx: Any = None
        self.mem: Any = None
        self.batch: Any = None
        self._batch_allocated = False
        self.kv_size = 0
        """KV cache size in cells, as llama.cpp rounded it."""
        self.context_length = 0
        """Cells one sequence may use: all of them when unified, ``kv_size / n_seq`` otherwise."""
        self.unified = False
        self.backend: CpuBackend | None = None
        """The CPU backend llama.cpp runs on (see ``cpu`` and ``probe``)."""
        self._logits_row: type[ctypes.Array[ctypes.c_float]] = ctypes.c_float * 1

    @classmethod
    def load(cls, cfg: WorkerConfig) -> Native:
        native = cls()
        try:
            native._load(cfg)
        except BaseException:
            native.free()
            raise
        return native

    def _load(self, cfg: WorkerConfig) -> None:
        install_native_logging()
        backend = self.backend = choose_backend(cfg.model_path, cfg.amx, cfg.proof_dir)
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = cfg.n_gpu_layers
        mparams.use_extra_bufts = backend.extra_bufts
        model = llama_cpp.llama_model_load_from_file(cfg.model_path.encode("utf-8"), mparams)
        if not model:
            raise EngineFailure(f"Cannot load the model file {cfg.model_path}.")
        self.model = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self._logits_row = ctypes.c_float * int(llama_cpp.llama_vocab_n_tokens(self.vocab))

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
        self.ctx = ctx
        self.mem = llama_cpp.llama_get_memory(ctx)
        self.kv_size = int(llama_cpp.llama_n_ctx(ctx))
        # Unified: every sequence may use the whole cache. Split: llama.cpp gives each n_ctx/n_seq.
        self.context_length = int(llama_cpp.llama_n_ctx_seq(ctx))
        self.batch = llama_cpp.llama_batch_init(cfg.n_batch, 0, 1)
        self._batch_allocated = True
        for i in range(cfg.n_batch):
            self.batch.n_seq_id[i] = 1

    # -- one step ---------------------------------------------------------------------------------

    def fill(self, plan: Plan) -> tuple[int, list[tuple[SeqState, int]]]:
        """Write ``plan`` into the batch; returns its token count and, for each sequence whose
        pending tokens all go in, the batch index of its last token (the one with logits)."""
        batch = self.batch
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
        return i, outputs

    def logits(self, index: int) -> npt.NDArray[np.float32]:
        """The logits row of batch entry ``index`` after the last decode (a view: no copy)."""
        row = llama_cpp.llama_get_logits_ith(self.ctx, index)
        if not row:
            raise EngineFailure(f"llama.cpp has no logits for batch index {index}")
        # A prebuilt array type is 3x cheaper than np.ctypeslib.as_array.
        view = memoryview(self._logits_row.from_address(ctypes.addressof(row.contents)))
        return np.frombuffer(view, np.float32)

    # -- the KV cache ---------------------------------------------------------------------------

    def remove(self, seq_id: int, start: int) -> bool:
        """Drop the cells of ``seq_id`` from position ``start`` on (0: all of them)."""
        return bool(llama_cpp.llama_memory_seq_rm(self.mem, seq_id, start if start > 0 else -1, -1))

    def cells(self, seq_id: int) -> int:
        """KV cells ``seq_id`` holds, as llama.cpp reports them."""
        lo = int(llama_cpp.llama_memory_seq_pos_min(self.mem, seq_id))
        hi = int(llama_cpp.llama_memory_seq_pos_max(self.mem, seq_id))
        return hi - lo + 1 if lo >= 0 else 0

    def free(self) -> None:
        if self._batch_allocated:
            llama_cpp.llama_batch_free(self.batch)
            self._batch_allocated = False
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
            self.mem = None
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _native_log_callback(level: int, text: bytes, user_data: Any) -> None:
    # ggml_log_level: 1 DEBUG, 2 INFO, 3 WARN, 4 ERROR, 5 CONT (continues the previous line).
    # llama.cpp is chatty at INFO (every tensor of the model); that belongs at DEBUG here.
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        py_level = logging.WARNING if level == 3 else logging.ERROR if level == 4 else logging.DEBUG
        _native_log.log(py_level, "%s", message)


def install_native_logging() -> None:
    """Route llama.cpp's own log lines (process-wide) into ``logging`` instead of stderr."""
    llama_cpp.llama_log_set(_native_log_callback, None)
