"""One generation over the pool: token ids out to an upstream, token events back (imports core,
engine.protocol, engine.checkpoint, engine.queued, engine.remote).

A sequence is one task that runs one or more upstream completions over the same growing token
list (prompt, sampled tokens, injected tokens):

- each completion asks for at most what is left: ``max_tokens`` less what was sampled, the room
  left in the context, and, while the thinking-budget checkpoint is armed, the tokens left to it;
  so an upstream stops exactly at the budget, the sequence pauses (``Paused``), and after
  ``resume(tokens)`` the next completion sends prompt + reasoning + those tokens, which the
  upstream's prefix cache mostly holds already;
- a completion that ends by length before the sequence is done (the marker came before the
  budget) is followed by another from where it stopped;
- ids a server withheld (llama.cpp sends a token ending inside a UTF-8 character only as bytes in
  the next token's text) are recovered from those bytes (``pieces``); a whole llama.cpp answer
  lists every id, so only its streams need this;
- end-of-generation ids end the sequence (or pause it, ``Checkpoint.on_end``) and are neither
  emitted nor counted, as in the embedded engine;
- the tokens of one read from the upstream go to the consumer as one run (``push_tokens``);
- for a caller that takes every token at the end (``EngineRequest.whole``), a completion of at
  most ``whole_max_tokens`` is asked for whole: one response instead of an event per token. A
  cancel then waits for it, so that every token the upstream sampled is counted (``settle``);
- a completion that fails before the sequence emitted its first sampled token goes to another
  upstream (failover); after that the sequence ends with ``EngineFailure``, which the API
  renders as an error in the caller's dialect.

``EngineFinished.cached_tokens`` is what the upstream that took the prompt reported for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence as Seq
from typing import Literal, Protocol

from thinkserve.core.errors import EngineFailure, InvalidParameter, Overloaded, ThinkserveError
from thinkserve.engine.checkpoint import CheckpointState
from thinkserve.engine.protocol import EngineFinished, EngineRequest, Paused, TokenEvent
from thinkserve.engine.queued import QueuedSequence, TokenRun
from thinkserve.engine.remote.pieces import PieceIndex, recover
from thinkserve.engine.remote.pool import Pool
from thinkserve.engine.remote.upstream import Upstream, UpstreamFailure
from thinkserve.engine.remote.vocab import Decoder, RemoteTokenizer
from thinkserve.engine.remote.wire import Chunk

log = logging.getLogger("thinkserve.engine.remote")

#: What a completion leaves the sequence to do next.
Step = Literal["stop", "length", "pause", "pause_end", "more"]

FAILED = "The upstream engine server failed while generating this response"
WHY = {
    "connect": "it could not be reached",
    "timeout": "it did not answer in time",
    "stream": "the connection to it broke",
    "status": "it answered with a server error",
    "protocol": "its reply could not be read",
    "busy": "it was busy",
    "rejected": "it refused the request",
}
"""What the caller is told of each failure kind (``upstream.FailureKind``); details go to the log."""


def failed(failure: UpstreamFailure) -> EngineFailure:
    return EngineFailure(f"{FAILED} ({WHY.get(failure.kind, failure.kind)}).")


class NoUpstream(Overloaded):
    """No upstream is up, or every one refused the request before its first token (HTTP 503)."""


class Host(Protocol):
    """What a sequence needs of its engine."""

    @property
    def pool(self) -> Pool: ...

    @property
    def tokenizer(self) -> RemoteTokenizer: ...

    @property
    def context_length(self) -> int: ...

    @property
    def served_model(self) -> str | None: ...

    @property
    def whole_max_tokens(self) -> int: ...

    def decoder(self) -> Decoder: ...

    async def pieces(self) -> PieceIndex:
        """The vocabulary's pieces, for ids a server withheld (built on first use)."""
        ...

    def sampled(self, n: int) -> None:
        """Count ``n`` more sampled tokens for the engine's stats."""
        ...

    def ended(self, sequence: RemoteSequence) -> None: ...


class RemoteSequence(QueuedSequence):
    """``engine.protocol.Sequence`` over the pool; see the module docstring."""

    def __init__(self, host: Host, request: EngineRequest, first: Upstream) -> None:
        super().__init__(asyncio.get_running_loop())
        self._host = host
        self._request = request
        self._tokens = list(request.prompt)
        self._sampled = 0
        self._started = False
        """A sampled token was emitted: from now on a failure is the caller's error."""
        self._cached: int | None = None
        self._gate = CheckpointState(request.checkpoint)
        self._decoder = host.decoder()
        self._resumed: asyncio.Future[tuple[int, ...]] | None = None
        """The tokens of the resume that a pause waits for."""
        self._upstream = first
        """The upstream of the last completion: the next one prefers it (its cache)."""
        self._first: Upstream | None = first
        """Chosen by ``submit`` (which raises ``NoUpstream`` when none is up); used once."""
        self._awaiting_whole = False
        """A whole completion is on its way: a cancel lets it come (``_send_cancel``)."""
        self._task = self._start(
            self._run, f"remote-{request.request_id}", len(request.prompt), lambda: host.ended(self)
        )

    # -- QueuedSequence ------------------------------------------------------------------------

    def _send_resume(self, tokens: Seq[int]) -> None:
        n_vocab = self._host.tokenizer.n_vocab
        if any(t < 0 or t >= n_vocab for t in tokens):
            raise InvalidParameter("Token id out of range.")
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(tuple(tokens))

    def _send_cancel(self) -> None:
        if self._awaiting_whole:
            # The upstream samples it to its end whether or not we wait: take its tokens so that
            # they are counted (``settle``), then end as cancelled (``_generate``).
            return
        self._task.cancel()

    # -- the task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._generate()
        except asyncio.CancelledError:
            # The answer to the cancel (``settle`` waits for it): the tokens the upstream streamed
            # were pushed as they came; closing the stream stops the upstream's generation.
            cached = self._cached or 0  # known only if the upstream reported it before the cut
            self.push(EngineFinished("cancelled", len(self._request.prompt), cached, self._sampled))
        except ThinkserveError as exc:
            self.push(exc)
        except Exception:
            log.exception("remote sequence %s failed", self._request.request_id)
            self.push(EngineFailure(FAILED + "."))

    async def _generate(self) -> None:
        request, gate = self._request, self._gate
        context = self._host.context_length
        while True:
            if gate.due(self._sampled):
                await self._pause(at_end=False)
                if len(self._tokens) >= context:
                    self._finish("length")
                    return
                continue
            cap = min(request.max_tokens - self._sampled, context - len(self._tokens))
            if gate.armed:
                cap = min(cap, gate.limit - self._sampled)
            if cap <= 0:
                self._finish("length")
                return
            before = self._sampled
            step = await self._complete(cap)
            if self.cancelled:
                raise asyncio.CancelledError  # cancelled while a whole completion came
            if step == "stop" or step == "length":
                self._finish(step)
                return
            if step == "pause":
                await self._pause(at_end=False)
            elif step == "pause_end":
                await self._pause(at_end=True)
            elif self._sampled == before:
                # Ended by length with nothing sampled: the upstream's context is full.
                self._finish("length")
                return

    async def _pause(self, *, at_end: bool) -> None:
        self._gate.pause()
        self._resumed = self.loop.create_future()
        self.push(Paused(at_end=at_end))
        injected = await self._resumed
        self._gate.resume()
        decoder = self._decoder
        for token in injected:
            self._tokens.append(token)
            self.push(TokenEvent(token, decoder.feed(token), injected=True))

    def _finish(self, reason: Literal["stop", "length"]) -> None:
        cached = self._cached or 0
        self.push(EngineFinished(reason, len(self._request.prompt), cached, self._sampled))

    # -- one completion, with failover ---------------------------------------------------------

    async def _complete(self, cap: int) -> Step:
        tried: list[Upstream] = []
        upstream, self._first = self._first, None
        while True:
            if upstream is None:
                upstream = self._host.pool.choose(self._tokens, exclude=tried, prefer=self._upstream)
                if upstream is None:
                    raise self._no_upstream(tried)
            tried.append(upstream)
            try:
                return await self._stream(upstream, cap)
            except UpstreamFailure as failure:
                upstream.failed(failure)
                if not failure.retryable:
                    log.error("upstream %s refused %s: %s", upstream.url, self._request.request_id, failure)
                    raise failed(failure) from failure
                if self._started:
                    log.warning("upstream %s failed mid-stream (%s): %s", upstream.url, failure.kind, failure)
                    raise failed(failure) from failure
                if self.cancelled:
                    raise asyncio.CancelledError from failure  # cancelled while a whole completion came
                upstream.counters.failovers += 1
                log.warning(
                    "upstream %s failed before the first token (%s: %s); trying another",
                    upstream.url,
                    failure.kind,
                    failure,
                )
                upstream = None

    def _no_upstream(self, tried: list[Upstream]) -> ThinkserveError:
        if self._started:
            return EngineFailure(f"{FAILED} (no upstream engine server is available to continue it).")
        if tried:
            return NoUpstream("Every upstream engine server failed to take the request; retry later.")
        return NoUpstream("No upstream engine server is available; retry later.")

    async def _stream(self, upstream: Upstream, cap: int) -> Step:
        """One completion at ``upstream``; its tokens go out as they come (all at once when whole)."""
        self._upstream = upstream
        wire = upstream.wire
        assert wire is not None
        # A caller that takes everything at the end gets a short completion whole: one response.
        whole = self._request.whole and cap <= self._host.whole_max_tokens
        body = wire.body(self._tokens, cap, self._request.sampling, self._host.served_model, stream=not whole)
        counters = upstream.counters
        n_vocab = self._host.tokenizer.n_vocab
        step: Step | None = None
        finish = None
        sampled_before = self._sampled
        sent = time.monotonic()
        first_token = not whole  # the first token of a whole completion comes with its last
        self._awaiting_whole = whole
        received = 0
        upstream.in_flight += 1
        outcome = "cancelled"
        try:
            async with contextlib.aclosing(upstream.chunks(body, stream=not whole)) as chunks:
                async for chunk in chunks:
                    if chunk.cached_tokens is not None and self._cached is None:
                        self._cached = chunk.cached_tokens
                        counters.prompt_tokens += len(self._request.prompt)
                        counters.cached_tokens += chunk.cached_tokens
                    tokens = chunk.tokens
                    if tokens and first_token:
                        first_token = False
                        counters.first_token.observe(time.monotonic() - sent)
                    if tokens:
                        bad = _first_bad(tokens, n_vocab)
                        # Streamed llama.cpp events: ids they sent only as bytes go before them.
                        if bad is None and (chunk.generated or 0) > received + len(tokens):
                            tokens = await self._withheld(chunk, received)
                        received += len(tokens)
                        if step is None:
                            # Tokens past the end (a server ignoring max_tokens) are dropped.
                            step = self._take(tokens if bad is None else tokens[:bad])
                        if bad is not None:
                            # Never handed to the tokenizer: an unknown id would crash llama.cpp's.
                            raise UpstreamFailure(
                                "protocol", f"token id {tokens[bad]} is not in the vocabulary"
                            )
                    if chunk.finish is not None:
                        finish = chunk.finish
            if finish is None and step is None:
                raise UpstreamFailure("stream", "the stream ended without a finish reason")
            outcome = "ok"
            upstream.succeeded()
        except UpstreamFailure as failure:
            outcome = "failed"
            if step is None:
                raise
            # The generation got all it needed (only the usage was still to come).
            upstream.failed(failure)
            log.warning("upstream %s failed after the last token: %s", upstream.url, failure)
        finally:
            self._awaiting_whole = False
            upstream.in_flight -= 1
            counters.count(counters.requests, outcome)
            counters.duration.observe(time.monotonic() - sent)
            self._host.sampled(self._sampled - sampled_before)
        if step is not None:
            return step
        if finish == "stop":
            # Ended by an end-of-generation token that the server did not send back.
            return "pause_end" if self._gate.pauses_at_end() else "stop"
        return "more"

    async def _withheld(self, chunk: Chunk, received: int) -> list[int]:
        """``chunk``'s ids with those of the tokens the server sent only the bytes of, recovered
        (``pieces``) event by event; ``received``: the ids of the completion before it."""
        index = await self._host.pieces()
        out: list[int] = []
        for part in chunk.parts or (chunk,):
            missing = (part.generated or 0) - received - len(out) - len(part.tokens)
            if missing > 0:
                ids = recover(index, part.text, part.tokens, missing)
                if ids is None:
                    raise UpstreamFailure(
                        "protocol", f"{missing} token ids are missing before {list(part.tokens)}"
                    )
                out += ids
            out += part.tokens
        return out

    def _take(self, tokens: Seq[int]) -> Step | None:
        """Token ids from the upstream, pushed as one run; what to do next if the completion is
        over for us (the ids after that are dropped: a server ignoring max_tokens)."""
        gate = self._gate
        is_eog = self._host.tokenizer.is_eog
        feed = self._decoder.feed
        max_tokens = self._request.max_tokens
        context = self._host.context_length
        out_tokens: list[int] = []
        texts: list[str] = []
        step: Step | None = None
        try:
            for token in tokens:
                if is_eog(token):
                    step = "pause_end" if gate.pauses_at_end() else "stop"
                    break
                self._sampled += 1
                self._started = True
                self._tokens.append(token)
                final = self._sampled >= max_tokens or len(self._tokens) >= context
                text = feed(token)
                if final:
                    text += self._decoder.flush()
                out_tokens.append(token)
                texts.append(text)
                if final:
                    step = "length"
                    break
                if gate.armed and gate.after(token, text, self._sampled):
                    step = "pause"
                    break
        finally:
            if len(out_tokens) == 1:
                self.push(TokenEvent(out_tokens[0], texts[0]))
            else:
                self.push_tokens(TokenRun(out_tokens, texts))
        return step


def _first_bad(tokens: Seq[int], n_vocab: int) -> int | None:
    """The index of the first id outside the vocabulary, if any (one C pass for the usual case)."""
    if min(tokens) >= 0 and max(tokens) < n_vocab:
        return None
    return next(i for i, t in enumerate(tokens) if not 0 <= t < n_vocab)
