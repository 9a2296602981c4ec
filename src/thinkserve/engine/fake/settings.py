"""Settings of the scripted engine (pure).

An ``[engines.NAME]`` table of this kind reads::

    [engines.default]
    kind = "fake"
    n_ctx = 8192                 # the context length it reports (default 8192)
    max_queue = 100000           # sequences at once before Overloaded (default 64)
    own_process = false          # default false; true runs it like llama.cpp, supervised
    delay = 0.01                 # seconds between tokens (default 0: as fast as the loop goes)
    answer = "Hello!"            # the scripted answer (one token per character)
    hang_timeout = 60            # own_process only: the watchdog's limit (engine.supervised)
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
        "hang_timeout": float,
    }

    name: str
    kind: str = field(default="fake", init=False)
    n_ctx: int = 8192
    max_queue: int = 64
    own_process: bool = False
    delay: float = 0.0
    answer: str = "Hello! I am a helpful assistant."
    hang_timeout: float = 60.0
    """Seconds an engine process may go without a heartbeat, or without progress while it has
    work, before the watchdog kills it (it is then restarted like a crashed one)."""
