"""The engine process: one engine built in-process, served to the gateway over a socket (imports
core, engine).

Started by ``engine.supervised.supervisor`` as ``python -m thinkserve.engine.supervised.child FD
LEVEL``; ``FD`` is its end of a socket pair (see ``wire`` for the messages). Everything a turn of
its event loop produces for every sequence goes out as one frame, so the process boundary costs
a frame per decode step, not one per token. It exits when told to stop or when the gateway's end
of the socket closes (the gateway died): an engine process never outlives its gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from thinkserve.core.errors import EngineFailure, ThinkserveError
from thinkserve.engine.protocol import Engine, EngineFinished, EngineRequest, Paused, Sequence, TokenEvent
from thinkserve.engine.supervised.wire import Failed, Ready, Start, frame, read_frame

log = logging.getLogger("thinkserve.engine.process")

GENERIC_FAILURE = "The inference engine failed while generating this response."
STATS_INTERVAL_S = 0.25
HEARTBEAT_S = 1.0
SETTLE_S = 30.0
"""How long a cancelled sequence that is not diverted may take to answer its cancel."""


@runtime_checkable
class Divertible(Protocol):
    """A sequence that can hand its items to a callback (``LlamaCppSequence.divert``)."""

    def divert(self, sink: Callable[[Any], None]) -> None: ...


@dataclass(slots=True)
class _Running:
    sequence: Sequence
    resumed: asyncio.Event | None
    """Set by ``resume`` for a forwarding task; None for a diverted sequence (no task)."""
    task: asyncio.Task[None] | None = None


class Host:
    """Runs the gateway's commands against a local engine and batches the events back."""

    def __init__(self, engine: Engine, writer: asyncio.StreamWriter) -> None:
        self._engine = engine
        self._writer = writer
        self._running: dict[int, _Running] = {}
        self._outbox: list[tuple[Any, ...]] = []
        self._flush_pending = False
        self._settling: set[asyncio.Task[None]] = set()
        self._sent = 0
        """Items sent so far: with the engine's decode steps, the progress a heartbeat reports."""
        self._stats_sent = 0.0
        self._finished = False

    def beat(self) -> None:
        """Tell the gateway this process is alive and how far its engine got (``wire``: "beat")."""
        stats = self._engine.snapshot()
        progress = self._sent + int(getattr(stats, "decode_calls", 0))
        if not self._writer.is_closing():
            self._writer.write(frame(("beat", progress)))

    def send(self, key: int, item: object) -> None:
        self._sent += 1
        if type(item) is TokenEvent:
            # A plain tuple: pickling a slots dataclass costs about 8x more, per token.
            self._outbox.append((key, item.token, item.text, item.injected))
        else:
            self._outbox.append((key, item))
            self._finished = self._finished or isinstance(item, EngineFinished)
        if not self._flush_pending:
            # One frame per loop turn: the engine delivers a whole decode step in one callback,
            # and every forwarder it wakes runs before this.
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        items, self._outbox = self._outbox, []
        if not items or self._writer.is_closing():
            return
        # Stats are a snapshot for /metrics: a few times a second is enough, and when a sequence
        # ends (its counters are then final), but not with every token.
        stats = None
        now = time.monotonic()
        if self._finished or now - self._stats_sent >= STATS_INTERVAL_S:
            stats = self._engine.snapshot()
            self._stats_sent, self._finished = now, False
        self._writer.write(frame(("events", items, stats)))

    def submit(self, key: int, request: EngineRequest) -> None:
        try:
            sequence = self._engine.submit(request)
        except ThinkserveError as exc:
            self.send(key, exc)
            return
        except Exception:
            log.exception("submitting %s failed", request.request_id)
            self.send(key, EngineFailure(GENERIC_FAILURE))
            return
        if isinstance(sequence, Divertible):
            self._running[key] = _Running(sequence, None)
            # Before the loop runs again, so no item can reach the iterator first.
            sequence.divert(lambda item: self._diverted(key, item))
            return
        running = _Running(sequence, asyncio.Event())
        running.task = asyncio.create_task(self._forward(key, running))
        self._running[key] = running

    def _diverted(self, key: int, item: object) -> None:
        self.send(key, item)
        if isinstance(item, EngineFinished | ThinkserveError):
            self._running.pop(key, None)

    def resume(self, key: int, tokens: tuple[int, ...]) -> None:
        running = self._running.get(key)
        if running is None:
            return
        try:
            running.sequence.resume(tokens)
        except ThinkserveError as exc:
            self.send(key, exc)
            self.cancel(key)
            return
        if running.resumed is not None:
            running.resumed.set()

    def cancel(self, key: int) -> None:
        """Cancel ``key``'s sequence. A diverted one keeps sending what the engine sampled until
        its answer (``EngineFinished("cancelled")``); any other is settled here and its answer
        sent, so that the gateway always hears the end of a cancelled sequence."""
        running = self._running.pop(key, None)
        if running is None:
            return
        running.sequence.cancel()
        if running.task is not None:
            running.task.cancel()
            # Kept referenced until done (the loop holds tasks only weakly).
            task = asyncio.create_task(self._settle(key, running.sequence))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _settle(self, key: int, sequence: Sequence) -> None:
        try:
            left = await sequence.settle(SETTLE_S)
        except Exception:
            log.exception("settling sequence %s failed", key)
            left = []
        for item in left:
            self.send(key, item)
        if not left or not isinstance(left[-1], EngineFinished):
            self.send(key, EngineFinished("cancelled", 0, 0, 0))

    async def _forward(self, key: int, running: _Running) -> None:
        try:
            async for event in running.sequence:
                self.send(key, event)
                if isinstance(event, Paused) and running.resumed is not None:
                    # The gateway answers with "resume"; resume() is applied before the next
                    # item is asked for, as the Sequence protocol wants.
                    await running.resumed.wait()
                    running.resumed.clear()
        except ThinkserveError as exc:
            self.send(key, exc)
        except Exception:
            log.exception("sequence %s failed", key)
            self.send(key, EngineFailure(GENERIC_FAILURE))
        finally:
            if self._running.get(key) is running:
                del self._running[key]

    def close(self) -> None:
        for key in list(self._running):
            self.cancel(key)


async def serve(sock: socket.socket) -> None:
    from thinkserve.engine.registry import build_inline

    reader, writer = await asyncio.open_unix_connection(sock=sock)
    start = await read_frame(reader)
    if not isinstance(start, Start):
        raise SystemExit("the first frame must be Start")
    try:
        engine = await build_inline(start.kind, start.settings, start.model_path, start.data_dir)
    except ThinkserveError as exc:
        writer.write(frame(Failed(exc.message)))
        await writer.drain()
        raise SystemExit(1) from None
    host = Host(engine, writer)
    heart = asyncio.create_task(_heartbeat(host))
    try:
        describe = getattr(engine, "describe", None)
        backend = describe() if callable(describe) else start.kind
        writer.write(frame(Ready(engine.context_length, _n_vocab(engine), str(backend))))
        while True:
            try:
                message = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                log.info("the gateway is gone; stopping")
                return
            verb = message[0]
            if verb == "submit":
                host.submit(message[1], message[2])
            elif verb == "resume":
                host.resume(message[1], message[2])
            elif verb == "cancel":
                host.cancel(message[1])
            elif verb == "stop":
                return
    finally:
        heart.cancel()
        host.close()
        await engine.aclose()
        with contextlib.suppress(ConnectionError):
            writer.close()


async def _heartbeat(host: Host) -> None:
    # From the event loop: a loop that is stuck (or a process that is stopped) sends none, and the
    # gateway's watchdog notices (``supervisor``).
    while True:
        host.beat()
        await asyncio.sleep(HEARTBEAT_S)


def _n_vocab(engine: Engine) -> int:
    return int(getattr(engine.tokenizer, "n_vocab", 0))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fd, level = int(args[0]), args[1] if len(args) > 1 else "INFO"
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s[engine %(process)d]: %(message)s"
    )
    # Ctrl-C in a terminal reaches the whole process group: the gateway stops this process in
    # order (or it sees the socket close), so it must not die first on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    asyncio.run(serve(sock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
