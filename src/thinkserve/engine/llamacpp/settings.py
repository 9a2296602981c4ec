"""Settings of the llama.cpp engine: its config table and the worker's configuration (pure).

An ``[engines.NAME]`` table of this kind (the default kind) reads::

    [engines.default]
    kind = "llamacpp"            # optional
    model = "/models/Qwen3-8B-Q4_K_M.gguf"   # omitted: the embedded default model
    n_ctx = 16384
    n_seq = 8
    n_threads = 8                # omitted: every CPU
    max_queue = 64
    own_process = true           # a supervised process of its own (engine.supervised)
    amx = "auto"                 # AMX kernels only where a probe proved them; "on", "off"
    hang_timeout = 60            # seconds without a heartbeat or progress before a kill-restart
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from thinkserve.engine.llamacpp.cpu import AmxPolicy


@dataclass(frozen=True, slots=True)
class LlamaCppSettings:
    """One GGUF file and how to run it."""

    TOML_KEYS: ClassVar[Mapping[str, type | tuple[str, ...]]] = {
        "model": str,
        "n_ctx": int,
        "n_seq": int,
        "n_threads": int,
        "max_queue": int,
        "own_process": bool,
        "amx": ("auto", "on", "off"),
        "hang_timeout": float,
    }

    name: str
    kind: str = field(default="llamacpp", init=False)
    model: str | None = None
    """GGUF path; None means the embedded default model (assembled on first start)."""
    n_ctx: int = 8192
    n_seq: int = 8
    n_threads: int | None = None
    max_queue: int = 64
    own_process: bool = True
    """Run the engine in a supervised process of its own, where a native crash cannot take the
    gateway down."""
    amx: AmxPolicy = "auto"
    """llama.cpp's AMX kernels: ``auto`` (only where a probe proved them), ``on`` or ``off``."""
    hang_timeout: float = 60.0
    """Seconds an engine process may go without a heartbeat, or without progress while it has
    work, before the watchdog kills it (it is then restarted like a crashed one)."""


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
    amx: AmxPolicy = "auto"
    proof_dir: Path | None = None
    """Where the AMX probe keeps its verdicts (None: the default data directory)."""
