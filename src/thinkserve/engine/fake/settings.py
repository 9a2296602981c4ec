"""Settings of the scripted engine (pure).

An ``[engines.NAME]`` table of this kind reads::

    [engines.default]
    kind = "fake"
    n_ctx = 8192                 # the context length it reports (default 8192)
    max_queue = 100000           # sequences at once before Overloaded (default 64)
    own_process = false          # default false; true runs it like llama.cpp, supervised
    delay = 0.01                 # seconds between tokens (default 0: as fast as the loop goes)
    answer = "Hello!"            # the scripted answer (one token per character)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FakeSettings:
    """The scripted engine's knobs."""

    TOML_KEYS: ClassVar[Mapping[str, type | tuple[str, ...]]] = {
        "n_ctx": int,
        "max_queue": int,
        "own_process": bool,
        "delay": float,
        "answer": str,
    }

    name: str
    kind: str = field(default="fake", init=False)
    n_ctx: int = 8192
    max_queue: int = 64
    own_process: bool = False
    delay: float = 0.0
    answer: str = "Hello! I am a helpful assistant."
