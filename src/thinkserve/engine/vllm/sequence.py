"""One sequence on vLLM: requests in a row, the checkpoint between them (imports core, engine only).

vLLM runs a request to its ``max_tokens`` and forgets it; a thinkserve sequence may pause at a
checkpoint and take injected tokens. So a sequence is one or more vLLM requests over the same,
growing token list::

    request 0: prompt                                   max_tokens = min(left, checkpoint.limit)
    -> Paused; resume(early-stop phrase + </think>)
    request 1: prompt + reasoning + injected tokens     max_tokens = what is left

The second request's prompt is the first one's prompt and output, so vLLM's prefix cache holds
all of it but the last partial block: the resume evaluates a few dozen tokens, not the prompt.
A request cut at the checkpoint after the model already closed its think block (the marker
disarmed it) just goes on the same way, without a pause.

``cached_tokens`` is vLLM's own count for the first request (``RequestOutput.num_cached_tokens``):
the prompt tokens it found in its prefix cache. The driver only sees ``Step``\\ s, so it is tested
without vLLM (``engine`` adapts ``RequestOutput``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Literal

from thinkserve.core.errors import EngineFailure, ThinkserveError
from thinkserve.engine.checkpoint import CheckpointState
from thinkserve.engine.protocol import EngineFinished, EngineRequest, Paused, TokenEvent
from thinkserve.engine.queued import QueuedSequence
from thinkserve.engine.vllm.tokenizer import Pieces, StreamDecoder

log = logging.getLogger("thinkserve.engine.vllm")

GENERIC_FAILURE = "The inference engine failed while generating this response."


@dataclass(frozen=True, slots=True)
class Step:
    """What one output of a vLLM request adds::

    Step(tokens=[16, 17], cached_tokens=0, end=None)
    Step(tokens=[13], cached_tokens=0, end="stop")     # the end-of-generation token is left out
    """

    tokens: Seq[int]
    """Sampled tokens, without a final end-of-generation token (never shown nor counted)."""
    cached_tokens: int
    """Prompt tokens of this request that vLLM found in its prefix cache."""
    end: Literal["stop", "length"] | None = None
    """Set on the request's last output: an end-of-generation token, or ``max_tokens``."""


#: Runs one vLLM request: (token ids, max_tokens, request id, the sequence's request) -> outputs.
Generate = Callable[[list[int], int, str, EngineRequest], AsyncIterator[Step]]


@dataclass(slots=True)
class Counters:
    """The engine's running totals, shared by its sequences (event loop only)."""

    active: int = 0
    sampled_tokens: int = 0
    requests: int = 0
    """vLLM requests made: one per sequence, plus one per resume or continuation."""


class VllmSequence(QueuedSequence):
    """``engine.protocol.Sequence``: a driver task runs the requests and pushes the events."""

    def __init__(
        self,
        request: EngineRequest,
        generate: Generate,
        tokenizer: Pieces,
        context_length: int,
        counters: Counters,
    ) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(loop)
        self._request = request
        self._generate = generate
        self._tokenizer = tokenizer
        self._context = context_length
        self._counters = counters
        self._resumes: asyncio.Queue[list[int]] = asyncio.Queue()
        self._cached = 0
        """vLLM's count of the prompt tokens its prefix cache held (its first output's)."""
        counters.active += 1
        self._task = self._start(
            self._run, f"vllm-{request.request_id}", len(request.prompt), self._count_out
        )

    @property
    def request(self) -> EngineRequest:
        return self._request

    def _send_resume(self, tokens: Seq[int]) -> None:
        self._resumes.put_nowait(list(tokens))

    def _send_cancel(self) -> None:
        # Cancelling the task cancels vLLM's generate(), which aborts the request in the engine.
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._task.cancel()
        else:
            try:
                self.loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:
                pass  # The loop is closed: the task went with it.

    def _count_out(self) -> None:
        self._counters.active -= 1

    async def _run(self) -> None:
        try:
            await self._drive()
        except asyncio.CancelledError:
            # The answer to the cancel (``settle`` waits for it): every token vLLM returned was
            # pushed already; what it had not returned yet was aborted with the request.
            self.push(EngineFinished("cancelled", len(self._request.prompt), self._cached, 0))
        except ThinkserveError as exc:
            self.push(exc)
        except Exception:
            log.exception("vLLM sequence %s failed", self._request.request_id)
            self.push(EngineFailure(GENERIC_FAILURE))

    async def _drive(self) -> None:
        request = self._request
        tokens = list(request.prompt)
        state = CheckpointState(request.checkpoint)
        decoder = StreamDecoder(self._tokenizer)
        sampled = part = 0
        end: Literal["stop", "length"] | None = None
        while True:
            if state.due(sampled):
                await self._pause(tokens, state, decoder, at_end=False)
            room = self._context - len(tokens)
            if room < 1:
                end = "length"
                break
            left = min(request.max_tokens - sampled, room)
            cap = min(left, state.limit - sampled) if state.armed else left
            end = None
            self._counters.requests += 1
            async for step in self._generate(tokens, cap, f"{request.request_id}-{part}", request):
                if part == 0:
                    self._cached = step.cached_tokens
                for token in step.tokens:
                    sampled += 1
                    tokens.append(token)
                    text = decoder.feed(token)
                    if state.armed:
                        state.saw_marker(token, text)
                    self.push(TokenEvent(token, text))
                self._counters.sampled_tokens += len(step.tokens)
                end = step.end or end
            part += 1
            if end == "stop" and state.pauses_at_end():
                await self._pause(tokens, state, decoder, at_end=True)
                continue
            if end == "stop":
                break
            if sampled >= request.max_tokens or len(tokens) >= self._context:
                end = "length"
                break
            # Cut at the checkpoint: pause at the top of the loop if still armed, else go on.
        self.push(EngineFinished(end or "stop", len(request.prompt), self._cached, sampled))

    async def _pause(
        self, tokens: list[int], state: CheckpointState, decoder: StreamDecoder, *, at_end: bool
    ) -> None:
        state.pause()
        self.push(Paused(at_end=at_end))
        injected = await self._resumes.get()
        state.resume()
        tokens.extend(injected)
        for token in injected:
            self.push(TokenEvent(token, decoder.feed(token), injected=True))
