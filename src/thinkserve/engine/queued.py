"""A sequence whose events are pushed to it on its event loop: what every engine that decodes
elsewhere (a worker thread, an engine process) shares (imports core, engine.protocol).

The engine side calls ``push(item)`` (or ``push_tokens(events)`` for a run of tokens that came
together) on the sequence's loop; the consumer iterates. The iterator
raises an error item, ends after ``EngineFinished``, and stops after ``Paused`` unless ``resume``
was called before the next item was asked for, so that both ``async for ... : if Paused:
seq.resume(...)`` and "iterate, resume, iterate again" work. ``divert(sink)`` hands the items to a
callback instead (the engine process forwards them that way, without a queue or a task switch per
token). Subclasses say how a resume and a cancel reach the engine.

A cancel stops the iterator at once, but the engine may have sampled a few more tokens before it
heard of it: items keep arriving until the engine's ``EngineFinished("cancelled")`` (or an error),
and ``settle`` hands them over, so that usage counts them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from collections.abc import Sequence as Seq
from typing import Any, Final, overload

from thinkserve.core.errors import ThinkserveError
from thinkserve.engine.protocol import EngineEvent, EngineFinished, Paused, TokenEvent

log = logging.getLogger(__name__)

#: What a sequence's event stream carries: an event, or the error that ends it.
Item = EngineEvent | ThinkserveError


class TokenRun(Seq[TokenEvent]):
    """Sampled tokens that came together, ``tokens[i]`` decoding to ``texts[i]``: a sequence of
    ``TokenEvent``, made only when read one by one, where a consumer that takes the run whole
    reads the two lists (``DecodePipeline.feed_run``)."""

    __slots__ = ("texts", "tokens")

    def __init__(self, tokens: list[int], texts: list[str]) -> None:
        self.tokens = tokens
        self.texts = texts

    def __len__(self) -> int:
        return len(self.tokens)

    @overload
    def __getitem__(self, index: int) -> TokenEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[TokenEvent]: ...

    def __getitem__(self, index: int | slice) -> TokenEvent | list[TokenEvent]:
        if isinstance(index, slice):
            return list(map(TokenEvent, self.tokens[index], self.texts[index]))
        return TokenEvent(self.tokens[index], self.texts[index])

    def __iter__(self) -> Iterator[TokenEvent]:
        return map(TokenEvent, self.tokens, self.texts)


#: Events that came together (``QueuedSequence.runs``): one ``push_tokens``, or one event.
Run = TokenRun | tuple[EngineEvent]


class _EndOfStream:
    """Queued by ``cancel`` to wake a consumer blocked on the next event."""


_END: Final = _EndOfStream()


class QueuedSequence:
    """``engine.protocol.Sequence`` fed by ``push``; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Item | TokenRun | _EndOfStream] = asyncio.Queue()
        self._cancelled = False
        self._paused = False
        self._done = False
        self._sink: Callable[[Item], None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def push(self, item: Item) -> None:
        """Deliver one item (on ``loop``); items after the end are dropped. Items after a cancel
        wait for ``settle`` (or go to the sink)."""
        if self._done:
            return
        if isinstance(item, Paused):
            self._paused = True
        elif isinstance(item, EngineFinished | ThinkserveError):
            self._done = True
            self._ended()
        if self._sink is not None:
            self._sink(item)
            return
        self._queue.put_nowait(item)

    def push_tokens(self, run: TokenRun) -> None:
        """Deliver several sampled tokens at once (on ``loop``): one queue item, one wake-up of
        the consumer, where ``push`` would take one each."""
        if self._done or not run:
            return
        sink = self._sink
        if sink is not None:
            for event in run:
                sink(event)
            return
        self._queue.put_nowait(run)

    def divert(self, sink: Callable[[Item], None]) -> None:
        """Hand every later item to ``sink`` (on ``loop``) instead of the iterator.

        ``resume`` and ``cancel`` work as before; iterating is then moot.
        """
        self._sink = sink

    def __aiter__(self) -> AsyncIterator[EngineEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[EngineEvent]:
        while not self._cancelled:
            item = await self._queue.get()
            if isinstance(item, _EndOfStream) or self._cancelled:
                return
            if isinstance(item, TokenRun):
                for event in item:
                    yield event
                    if self._cancelled:
                        return
                continue
            if isinstance(item, ThinkserveError):
                raise item
            yield item
            if isinstance(item, EngineFinished):
                return
            if isinstance(item, Paused) and self._paused:
                # Not resumed while the consumer handled Paused: end this iteration; iterating
                # again after resume() continues the stream.
                return

    def runs(self) -> AsyncIterator[Run]:
        """The same events as iterating, in the runs they came in (a ``push_tokens`` is one run,
        any other item a run of its own): a consumer that takes a run at once saves a step per
        event. Same ends: an error raised, after ``EngineFinished``, after an unanswered ``Paused``."""
        return self._runs()

    async def _runs(self) -> AsyncIterator[Run]:
        while not self._cancelled:
            item = await self._queue.get()
            if isinstance(item, _EndOfStream) or self._cancelled:
                return
            if isinstance(item, TokenRun):
                yield item
                continue
            if isinstance(item, ThinkserveError):
                raise item
            yield (item,)
            if isinstance(item, EngineFinished):
                return
            if isinstance(item, Paused) and self._paused:
                return

    def resume(self, tokens: Seq[int]) -> None:
        if not self._paused:
            raise RuntimeError("resume() is only valid after Paused")
        self._send_resume(tokens)
        self._paused = False

    def cancel(self) -> None:
        if self._cancelled or self._done:
            return
        self._cancelled = True
        self._send_cancel()
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._queue.put_nowait(_END)
        else:
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, _END)
            except RuntimeError:
                pass  # The loop is closed: nobody is waiting on the queue.

    async def settle(self, limit_s: float) -> list[EngineEvent]:
        """``engine.protocol.Sequence.settle``: the items the iterator never gave out."""
        self.cancel()
        left: list[EngineEvent] = []
        if self._sink is not None:
            return left  # Everything went to the sink.
        deadline = self._loop.time() + limit_s
        while not (self._done and self._queue.empty()):
            try:
                item = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - self._loop.time()))
            except TimeoutError:
                log.warning("the engine did not answer a cancel within %.1f s", limit_s)
                break
            if isinstance(item, ThinkserveError):
                break
            if isinstance(item, _EndOfStream):
                continue
            if isinstance(item, TokenRun):
                left += item
                continue
            left.append(item)
            if isinstance(item, EngineFinished):
                break
        return left

    def _start(
        self,
        run: Callable[[], Coroutine[Any, Any, None]],
        name: str,
        prompt_tokens: int,
        ended: Callable[[], None],
    ) -> asyncio.Task[None]:
        """Drive the sequence with ``run()`` in a task of its own; ``ended()`` once it is over,
        however it ends.

        A task cancelled before its first step never enters its coroutine: here it is counted
        out all the same, and its cancel answered (``settle`` waits for that answer), for a client
        gone before its sequence started, or several sequences cancelled at once."""
        started = False

        async def body() -> None:
            nonlocal started
            started = True
            try:
                await run()
            finally:
                ended()

        def done(_: asyncio.Task[None]) -> None:
            if not started:
                ended()
                self.push(EngineFinished("cancelled", prompt_tokens, 0, 0))

        task = self._loop.create_task(body(), name=name)
        task.add_done_callback(done)
        return task

    # -- how the engine hears of it ------------------------------------------------------------

    def _send_resume(self, tokens: Seq[int]) -> None:
        """Append ``tokens`` in the engine and go on sampling; may raise the caller's error."""
        raise NotImplementedError

    def _send_cancel(self) -> None:
        raise NotImplementedError

    def _ended(self) -> None:
        """The last item arrived (``EngineFinished`` or an error)."""
