"""Settings of the vLLM engine: its config table and vLLM's engine arguments (pure; no vLLM import).

An ``[engines.NAME]`` table of this kind reads::

    [engines.default]
    kind = "vllm"
    model = "/models/Qwen3-8B"          # a Hugging Face directory (config.json, safetensors, tokenizer)
    tensor_parallel_size = 4            # vLLM's own parallelism, passed through as is
    pipeline_parallel_size = 2
    distributed_executor_backend = "ray"   # multi-node: vLLM joins the running Ray cluster
    max_model_len = 32768
    max_num_seqs = 64
    gpu_memory_utilization = 0.9        # on CPU: the share of RAM vLLM reserves
    kv_cache_memory_bytes = 4294967296  # or an exact KV cache size (CPU default: 1 GiB)
    enforce_eager = false
    max_queue = 256                     # requests waiting beyond max_num_seqs before 503
    [engines.default.engine_args]       # any other AsyncEngineArgs field, verbatim
    data_parallel_size = 2
    swap_space = 8

Keys left out keep vLLM's defaults, except ``enable_prefix_caching`` (on: ``cached_tokens`` and
the thinking budget's resume rely on it) and, on a CPU, ``kv_cache_memory_bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

#: The KV cache a CPU engine gets when the config sizes none: vLLM's own default reserves 92% of
#: the machine's RAM, which fails on any machine that runs something else.
CPU_KV_CACHE_BYTES = 1 << 30

#: Settings that are thinkserve's, not vLLM's.
_OWN = ("name", "kind", "model", "own_process", "max_queue", "engine_args")


@dataclass(frozen=True, slots=True)
class VllmSettings:
    """One Hugging Face model directory and how vLLM runs it."""

    TOML_KEYS: ClassVar[Mapping[str, type | tuple[str, ...]]] = {
        "model": str,
        "own_process": bool,
        "max_queue": int,
        "tensor_parallel_size": int,
        "pipeline_parallel_size": int,
        "distributed_executor_backend": ("mp", "ray", "uni", "external_launcher"),
        "max_model_len": int,
        "max_num_seqs": int,
        "dtype": str,
        "gpu_memory_utilization": float,
        "kv_cache_memory_bytes": int,
        "block_size": int,
        "enforce_eager": bool,
        "seed": int,
        "engine_args": dict,
    }

    name: str
    kind: str = field(default="vllm", init=False)
    model: str | None = None
    """The model directory (or anything vLLM's ``model`` accepts); required."""
    own_process: bool = False
    """vLLM already runs its engine core (and workers) in processes of its own; a supervised
    process around it is possible but only adds a hop."""
    max_queue: int = 64
    """Requests accepted beyond ``max_num_seqs`` before new ones get ``Overloaded``."""
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    """None: vLLM picks (``mp`` on one node); ``ray`` spans the nodes of a Ray cluster."""
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    dtype: str = "auto"
    gpu_memory_utilization: float | None = None
    kv_cache_memory_bytes: int | None = None
    block_size: int | None = None
    enforce_eager: bool = False
    seed: int | None = None
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    """Any other ``vllm.AsyncEngineArgs`` field, passed as is (it wins over the keys above)."""

    def engine_kwargs(self, model_path: str, *, cpu: bool) -> dict[str, Any]:
        """The keyword arguments of ``vllm.AsyncEngineArgs``::

        {"model": "/models/Qwen3-8B", "tokenizer": "/models/Qwen3-8B", "enable_prefix_caching": True,
         "tensor_parallel_size": 4, "pipeline_parallel_size": 2, "distributed_executor_backend": "ray",
         "dtype": "auto", "enforce_eager": False, ...}
        """
        kwargs: dict[str, Any] = {
            "model": model_path,
            "tokenizer": model_path,
            "enable_prefix_caching": True,
            # Requests and their statistics are thinkserve's to log.
            "enable_log_requests": False,
            "disable_log_stats": True,
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in _OWN and value is not None:
                kwargs[f.name] = value
        if cpu and self.kv_cache_memory_bytes is None and self.gpu_memory_utilization is None:
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        kwargs.update(self.engine_args)
        return kwargs
