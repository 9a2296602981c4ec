"""Settings of the llama.cpp engine: its config table and the worker's configuration (pure).

An ``[engines.NAME]`` table of this kind (the default kind) reads::

    [engines.default]
    kind = "llamacpp"            # optional
    model = "/models/Qwen3-8B-Q4_K_M.gguf"   # omitted: the embedded default model
    n_ctx = 16384
    n_seq = 8
    n_threads = 8                # omitted: every CPU
    max_queue = 64
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class LlamaCppSettings:
    """One GGUF file and how to run it."""

    TOML_KEYS: ClassVar[Mapping[str, type]] = {
        "model": str,
        "n_ctx": int,
        "n_seq": int,
        "n_threads": int,
        "max_queue": int,
    }

    name: str
    kind: str = field(default="llamacpp", init=False)
    model: str | None = None
    """GGUF path; None means the embedded default model (assembled on first start)."""
    n_ctx: int = 8192
    n_seq: int = 8
    n_threads: int | None = None
    max_queue: int = 64


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything the worker thread needs to load the model and schedule sequences."""

    model_path: str
    n_ctx: int
    n_seq: int
    n_threads: int
    n_batch: int
    prefill_chunk: int
    kv_unified: bool
    n_gpu_layers: int
    flash_attn: bool | None
    penalty_last_n: int
