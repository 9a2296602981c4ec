"""An engine in its own process, supervised: ``engine.protocol.Engine`` for the gateway (imports
core, engine.protocol, engine.supervised).

The model runs in a child process (``engine.supervised.child``), as vLLM's engine core and
Ollama's runners do, so that a native crash (SIGILL, SIGSEGV, an OOM kill) ends only that process
and its decode loop never holds the gateway's GIL. The gateway keeps the model's tokenizer (a
vocabulary-only load: rendering and counting need no weights).

When the child dies:

- every sequence in flight ends with ``EngineFailure`` naming the cause; the layers above turn
  that into an error in the caller's dialect and record the usage of the tokens already sent;
- ``health()`` says ``down`` with the reason, and ``submit`` refuses with ``EngineUnavailable``;
- the child is started again after a backoff (1 s, doubling to 30 s; reset once it has stayed up
  for a minute). Other engines, admin and metrics never notice.

A process that hangs instead of dying is treated the same way: the engine process sends a
heartbeat every second with its progress (items sent, decode steps done), and a watchdog kills it
(SIGKILL) when it has sent nothing for ``hang_timeout`` seconds, or made no progress for that long
while sequences are running. The health reason then says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence as Seq
from typing import Any

from thinkserve.core.errors import EngineFailure, InvalidParameter, Overloaded
from thinkserve.engine.protocol import (
    EngineRequest,
    EngineStats,
    Health,
    TokenEvent,
    Tokenizer,
)
from thinkserve.engine.queued import QueuedSequence
from thinkserve.engine.supervised.wire import Failed, Ready, Start, frame, read_frame

log = logging.getLogger("thinkserve.engine.process")


class EngineUnavailable(Overloaded):
    """The engine process is down (crashed or restarting); the request was not started (HTTP 503)."""


class RemoteSequence(QueuedSequence):
    """A generation running in the engine process (``engine.protocol.Sequence``)."""

    def __init__(self, engine: SupervisedEngine, key: int) -> None:
        super().__init__(asyncio.get_running_loop())
        self._engine = engine
        self._key = key

    def _send_resume(self, tokens: Seq[int]) -> None:
        self._engine.check_tokens(tokens)
        self._engine.send(("resume", self._key, tuple(tokens)))

    def _send_cancel(self) -> None:
        # Still routed until the engine's answer (``_ended``): the tokens sampled meanwhile are
        # the ones ``settle`` hands to metering.
        self._engine.send(("cancel", self._key))

    def _ended(self) -> None:
        self._engine.forget(self._key)


class SupervisedEngine:
    """Starts, watches and restarts an engine process; forwards sequences to it."""

    def __init__(
        self,
        name: str,
        start: Start,
        tokenizer: Tokenizer,
        *,
        close_tokenizer: Callable[[], None] | None = None,
        backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0),
        stable_after_s: float = 60.0,
        hang_timeout: float = 60.0,
    ) -> None:
        self._name = name
        self._start = start
        self._tokenizer = tokenizer
        self._close_tokenizer = close_tokenizer
        self._backoff = backoff
        self._stable_after_s = stable_after_s
        self._health = Health("starting")
        self._ready: Ready | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._live: dict[int, RemoteSequence] = {}
        self._keys = 0
        self._failures = 0
        self._restarts = 0
        self._up_since = 0.0
        self._closing = False
        self._watcher: asyncio.Task[None] | None = None
        self._hang_timeout = hang_timeout
        self._watchdog: asyncio.Task[None] | None = None
        self._heard = 0.0
        """When the engine process last sent anything."""
        self._progress = -1
        self._progressed = 0.0
        """When its progress last moved (or work arrived while it was idle)."""
        self._hung: str | None = None
        """Why the watchdog killed the process, for the health reason."""
        self.stats: EngineStats | None = None
        """The engine's last stats snapshot, as the engine process sent it."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the engine process and wait for its model to load (raises ``EngineFailure``)."""
        await self._spawn()

    async def _spawn(self) -> None:
        parent_end, child_end = socket.socketpair()
        try:
            level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "thinkserve.engine.supervised.child",
                str(child_end.fileno()),
                str(level),
                pass_fds=(child_end.fileno(),),
            )
        finally:
            child_end.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent_end)
        writer.write(frame(self._start))
        self._health = Health("starting", "loading the model", self._restarts, proc.pid)
        try:
            ready = await read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            ready = None
        if not isinstance(ready, Ready):
            code = await proc.wait()
            writer.close()
            reason = f"the engine process {_describe_exit(code)} while loading the model"
            if isinstance(ready, Failed):
                reason = f"{reason}: {ready.reason}"
            self._health = Health("down", reason, self._restarts)
            raise EngineFailure(f"Cannot start the engine {self._name!r}: {reason}")
        self._ready, self._proc, self._writer = ready, proc, writer
        self._up_since = time.monotonic()
        self._health = Health("up", ready.backend, self._restarts, proc.pid)
        log.info("engine %s up in process %d (%s)", self._name, proc.pid, ready.backend)
        self._heard = self._progressed = time.monotonic()
        self._progress = -1
        self._watcher = asyncio.create_task(self._watch(proc, reader))
        self._watchdog = asyncio.create_task(self._guard(proc))

    async def _watch(self, proc: asyncio.subprocess.Process, reader: asyncio.StreamReader) -> None:
        """Dispatch the process's events until it ends; then fail what was running, restart."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = await read_frame(reader)
                self._heard = time.monotonic()
                if message[0] == "beat":
                    if message[1] != self._progress:
                        self._progress, self._progressed = message[1], self._heard
                    continue
                if message[0] == "events":
                    self._progressed = self._heard
                    if message[2] is not None:
                        self.stats = message[2]
                    live = self._live
                    for item in message[1]:
                        sequence = live.get(item[0])
                        if sequence is None:
                            continue
                        if len(item) == 4:
                            sequence.push(TokenEvent(item[1], item[2], item[3]))
                        else:
                            sequence.push(item[1])
        code = await proc.wait()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._closing:
            return
        reason = f"the engine process {_describe_exit(code)}"
        if self._hung is not None:
            reason, self._hung = self._hung, None
        log.error("engine %s: %s; %d sequences in flight fail", self._name, reason, len(self._live))
        self._down(reason)
        await self._restart_loop(reason)

    async def _guard(self, proc: asyncio.subprocess.Process) -> None:
        """The watchdog: kill a process that stopped answering or stopped making progress."""
        limit = self._hang_timeout
        while proc.returncode is None:
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.monotonic()
            if now - self._heard > limit:
                self._hung = f"the engine process stopped answering (nothing for {limit:g} s); killed"
            elif self._live and now - self._progressed > limit:
                self._hung = (
                    f"the engine made no progress for {limit:g} s with {len(self._live)} "
                    "sequences in flight; killed"
                )
            else:
                continue
            log.error("engine %s: %s", self._name, self._hung)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return

    def _down(self, reason: str) -> None:
        self._health = Health("down", reason, self._restarts)
        self._proc = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        live, self._live = self._live, {}
        for sequence in live.values():
            sequence.push(EngineFailure(f"The inference engine stopped ({reason}) during this response."))

    async def _restart_loop(self, reason: str) -> None:
        if time.monotonic() - self._up_since >= self._stable_after_s:
            self._failures = 0
        while not self._closing:
            delay = self._backoff[min(self._failures, len(self._backoff) - 1)]
            self._failures += 1
            self._health = Health("down", f"{reason}; restarting in {delay:g} s", self._restarts)
            await asyncio.sleep(delay)
            if self._closing:
                return
            self._restarts += 1
            try:
                await self._spawn()
                return
            except EngineFailure as exc:
                reason = exc.message
                log.error("engine %s: restart failed: %s", self._name, reason)

    async def aclose(self) -> None:
        self._closing = True
        proc, writer = self._proc, self._writer
        if writer is not None and proc is not None:
            with contextlib.suppress(ConnectionError):
                writer.write(frame(("stop",)))
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                log.warning("engine %s did not stop in 30 s; killing it", self._name)
                proc.kill()
                await proc.wait()
            writer.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for sequence in list(self._live.values()):
            sequence.push(EngineFailure("The inference engine is closed."))
        self._live.clear()
        self._health = Health("stopped", "", self._restarts)
        if self._close_tokenizer is not None:
            self._close_tokenizer()

    # -- Engine ----------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def context_length(self) -> int:
        if self._ready is None:
            raise EngineFailure("The inference engine is not started.")
        return self._ready.context_length

    def health(self) -> Health:
        return self._health

    def snapshot(self) -> EngineStats:
        return self.stats if self.stats is not None else EngineStats()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def submit(self, request: EngineRequest) -> RemoteSequence:
        if self._writer is None or self._ready is None or self._health.state != "up":
            reason = self._health.reason or self._health.state
            raise EngineUnavailable(f"The inference engine is not available ({reason}); please retry later.")
        limit = self._ready.context_length
        if not 1 <= len(request.prompt) <= limit:
            raise InvalidParameter(f"Range of input length should be [1, {limit}]")
        self.check_tokens(request.prompt)
        if request.max_tokens < 1:
            raise InvalidParameter(f"Range of max_tokens should be [1, {limit}]", param="max_tokens")
        if not self._live:
            # Idle until now: the watchdog counts from here, not from the last piece of work.
            self._progressed = time.monotonic()
        self._keys += 1
        sequence = RemoteSequence(self, self._keys)
        self._live[self._keys] = sequence
        self._writer.write(frame(("submit", self._keys, request)))
        return sequence

    # -- used by RemoteSequence ------------------------------------------------------------------

    def check_tokens(self, tokens: Seq[int]) -> None:
        if not tokens:
            return
        n_vocab = self._ready.n_vocab if self._ready is not None else 0
        # n_vocab 0: the engine did not say (the scripted engine); its own process then checks.
        if min(tokens) < 0 or (n_vocab and max(tokens) >= n_vocab):
            raise InvalidParameter("Token id out of range.")

    def send(self, message: tuple[Any, ...]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(frame(message))

    def forget(self, key: int) -> None:
        self._live.pop(key, None)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def kill(engine: SupervisedEngine, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the engine process (fault tests and operators' drills)."""
    pid = engine.pid
    if pid is not None:
        os.kill(pid, sig)
