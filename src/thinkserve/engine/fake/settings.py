"""Settings of the scripted engine (pure).

An ``[engines.NAME]`` table of this kind reads::

    [engines.default]
    kind = "fake"
    n_ctx = 8192                 # the context length it reports (default 8192)
    max_queue = 100000           # sequences at once before Overloaded (default 64)
    own_process = false          # default false; true runs it like llama.cpp, supervised
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
    }

    name: str
    kind: str = field(default="fake", init=False)
    n_ctx: int = 8192
    max_queue: int = 64
    own_process: bool = False
