"""The way into the worker thread: commands from the event loop, and the bounded queue count.

The event loop ``submit``s, ``put``s resumes and cancels and finally ``Stop``; the worker ``get``s
them between two decode steps. ``waiting`` counts submitted requests that hold no slot yet, for
``max_queue`` and the stats; the worker lowers it (``dequeued``) as requests leave the line.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from thinkserve.core.errors import EngineFailure, Overloaded
from thinkserve.engine.llamacpp.sequence import Channel


@dataclass(frozen=True, slots=True)
class Submit:
    channel: Channel


@dataclass(frozen=True, slots=True)
class ResumeCmd:
    channel: Channel
    tokens: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Cancel:
    channel: Channel


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Command = Submit | ResumeCmd | Cancel | Stop


class CommandQueue:
    """Thread-safe: any thread puts, the worker thread gets."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting = 0
        self._accepting = False

    def open(self) -> None:
        """Start accepting requests (the model is loaded)."""
        with self._lock:
            self._accepting = True

    def submit(self, channel: Channel, max_queue: int) -> None:
        with self._lock:
            if not self._accepting:
                raise EngineFailure("The inference engine is not running.")
            if self._waiting >= max_queue:
                raise Overloaded("Too many requests are waiting for the model; please retry later.")
            self._waiting += 1
            # Inside the lock so that close(), which stops accepting under it, sees every submit.
            self._queue.put(Submit(channel))

    def put(self, command: ResumeCmd | Cancel | Stop) -> None:
        self._queue.put(command)

    def get(self, *, block: bool) -> Command | None:
        """The next command; None when there is none (and ``block`` is False)."""
        if not block and self._queue.empty():
            return None  # the common case between two steps, without raising queue.Empty
        try:
            return self._queue.get(block=block)
        except queue.Empty:
            return None

    def dequeued(self) -> None:
        with self._lock:
            self._waiting -= 1

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._waiting

    def close(self) -> list[Channel]:
        """Stop accepting; returns the channels of the requests still queued (they get failed)."""
        with self._lock:
            self._accepting = False
        left: list[Channel] = []
        while (cmd := self.get(block=False)) is not None:
            if isinstance(cmd, Submit):
                left.append(cmd.channel)
        with self._lock:
            self._waiting = 0
        return left
