"""Where the open-weight names' weights live (``sources.toml`` beside this module; imports core).

One record::

    [sources."qwen3-8b"]
    gguf = { hf = "Qwen/Qwen3-8B-GGUF", modelscope = "Qwen/Qwen3-8B-GGUF" }
    safetensors = { hf = "Qwen/Qwen3-8B", modelscope = "Qwen/Qwen3-8B" }
    quant = "Q4_K_M"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from thinkserve.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    gguf: dict[str, str] = field(default_factory=dict)
    """Hub (``hf``, ``modelscope``) -> ``ORG/REPO`` of GGUF files."""
    safetensors: dict[str, str] = field(default_factory=dict)
    quant: str | None = None
    """The default quantization (None when there is no GGUF)."""


def _repos(name: str, table: Any) -> dict[str, str]:
    if not isinstance(table, dict) or not all(
        k in ("hf", "modelscope") and isinstance(v, str) and v.count("/") == 1 for k, v in table.items()
    ):
        raise ConfigError(f"sources.toml: {name}: expected {{ hf = 'ORG/REPO', modelscope = 'ORG/REPO' }}")
    return dict(table)


def load_sources() -> dict[str, Source]:
    """Name -> its source repos and default quantization."""
    text = resources.files("thinkserve.catalogue").joinpath("sources.toml").read_text("utf-8")
    out: dict[str, Source] = {}
    for name, table in tomllib.loads(text).get("sources", {}).items():
        quant = table.get("quant")
        out[name] = Source(
            name,
            gguf=_repos(name, table.get("gguf", {})),
            safetensors=_repos(name, table.get("safetensors", {})),
            quant=quant if isinstance(quant, str) else None,
        )
    return out
