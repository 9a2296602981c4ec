"""The catalogue of served names: which names are served, and how each one thinks (imports core).

The data lives in ``models.toml`` beside this module; a config file may override any field of
any name and add new names (see ``config.py``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any, Literal

from thinkserve.core.errors import ConfigError

Mode = Literal["hybrid", "thinking_only"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One served model name and its documented thinking behaviour."""

    name: str
    engine: str = "default"
    """Key of the engine (weights + runtime) that serves this name."""
    mode: Mode = "hybrid"
    thinking_default: bool = True
    """Hybrid models only: whether the model thinks when ``enable_thinking`` is absent."""
    soft_switch: bool = False
    """Whether ``/think`` and ``/no_think`` in user turns are honoured."""
    non_stream: bool = False
    """Whether non-streaming calls are answered while thinking."""
    max_cot: int = 32768
    """Maximum reasoning length: default and upper bound of ``thinking_budget``."""
    max_input: int = 98304
    max_output: int = 16384
    """Upper bound of ``max_tokens``."""
    constrain_after_thinking: bool = False
    """thinkserve's own opt-in (not Model Studio's): JSON mode and forced tool calls are served
    while thinking, by constraining only the answer after ``</think>``; a request's
    ``thinkserve.constrain_after_thinking`` overrides it."""

    def thinks_by_default(self) -> bool:
        return self.mode == "thinking_only" or self.thinking_default


_FIELDS = {f.name: f.type for f in fields(ModelSpec)}


def spec_from_table(name: str, table: dict[str, Any], base: ModelSpec | None = None) -> ModelSpec:
    """Build (or override) a spec from a TOML table, rejecting unknown keys and wrong types."""
    spec = base or ModelSpec(name=name)
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _FIELDS or key == "name":
            raise ConfigError(f"unknown key {key!r} in model {name!r}")
        expected = _FIELDS[key]
        ok = {
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool) and value > 0,
            "Mode": value in ("hybrid", "thinking_only"),
        }[str(expected)]
        if not ok:
            raise ConfigError(f"bad value {value!r} for {key!r} in model {name!r}")
        changes[key] = value
    return replace(spec, **changes)


def load_catalogue() -> dict[str, ModelSpec]:
    """The built-in catalogue, name -> spec."""
    text = resources.files("thinkserve.catalogue").joinpath("models.toml").read_text("utf-8")
    data = tomllib.loads(text)
    defaults = data.get("defaults", {})
    return {
        name: spec_from_table(name, {**defaults, **table}) for name, table in data.get("models", {}).items()
    }
