"""The messages between the gateway and its engine process, and how they are framed (imports
core, engine.protocol).

Each message is one frame: a 4-byte big-endian length, then a pickle. Pickle is safe here
because both ends are thinkserve itself, joined by a private socket pair that no other process
can reach; it is also the cheapest way to move engine events (dataclasses, exceptions) across.

Gateway to engine process::

    Start(spec)                       first frame: what to load
    ("submit", key, EngineRequest)
    ("resume", key, (token, ...))
    ("cancel", key)
    ("stop",)

Engine process to gateway::

    Ready(context_length, n_vocab, backend)      once the model is loaded
    Failed(reason)                               instead, when it cannot be loaded
    ("beat", progress)                           every second: alive, and how far it got
    ("events", [item, ...], stats or None)       everything one turn of its loop produced:
        (key, token, text, injected)             a TokenEvent, as a plain tuple
        (key, event_or_error)                    anything else (Paused, EngineFinished, errors)
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from dataclasses import dataclass
from typing import Any

_HEADER = struct.Struct("!I")
MAX_FRAME = 1 << 30


@dataclass(frozen=True, slots=True)
class Start:
    """What the engine process builds: an engine kind's settings and the model file to load."""

    kind: str
    settings: Any
    model_path: str
    data_dir: str


@dataclass(frozen=True, slots=True)
class Ready:
    context_length: int
    n_vocab: int
    backend: str
    """The engine's own account of what it runs on (e.g. the CPU backend), for /health."""


@dataclass(frozen=True, slots=True)
class Failed:
    """Sent instead of ``Ready`` when the engine cannot be built; the process then exits."""

    reason: str


def frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message; raises ``asyncio.IncompleteReadError`` at the end of the stream."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    return pickle.loads(await reader.readexactly(size))
