"""The remote engine: ``engine.protocol.Engine`` over a pool of engine servers (imports core,
engine.protocol, engine.remote).

The gateway keeps the model's tokenizer (``vocab``), renders and tokenizes prompts itself, sends
token ids to an upstream chosen by ``pool`` and turns the ids that come back into token events
(``sequence``). Every thinkserve feature above the engine protocol (both dialects, the exact
thinking budget, keys, limits, metering) works unchanged on top.

- ``start()`` probes every upstream once (``probe``): its protocol when not configured, its
  context length and model. The engine's ``context_length`` is ``n_ctx`` if set, else the
  smallest an upstream reported; with no upstream reachable and no ``n_ctx`` it fails to start.
  Upstreams down at start join once their health probe succeeds.
- ``health()`` is "up" while at least one upstream takes requests, "down" with every upstream's
  reason otherwise; ``submit`` then refuses with ``NoUpstream`` (HTTP 503).
- ``upstream_stats()`` feeds the per-upstream metrics (``monitor.upstreams``).
- ``EngineRequest.constraint`` is not sent upstream (grammars are enforced on the llama.cpp
  engine only): calls are parsed from whatever the model writes.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp.abc import AbstractResolver

from thinkserve.core.errors import EngineFailure, InvalidParameter, Overloaded
from thinkserve.engine.protocol import EngineRequest, EngineStats, Health
from thinkserve.engine.remote.pieces import PieceIndex
from thinkserve.engine.remote.pool import Pool
from thinkserve.engine.remote.sequence import NoUpstream, RemoteSequence
from thinkserve.engine.remote.settings import RemoteSettings
from thinkserve.engine.remote.stats import UpstreamStats
from thinkserve.engine.remote.upstream import Upstream
from thinkserve.engine.remote.vocab import Decoder, RemoteTokenizer, Vocab

log = logging.getLogger("thinkserve.engine.remote")


class RemoteEngine:
    """A model served by engine servers elsewhere (``engine.protocol.Engine``)."""

    def __init__(
        self, settings: RemoteSettings, vocab: Vocab, *, resolver: AbstractResolver | None = None
    ) -> None:
        settings.check()
        self._settings = settings
        self._vocab = vocab
        self._pool = Pool(
            [Upstream(spec, settings, resolver=resolver) for spec in settings.upstreams], settings
        )
        self._live: set[RemoteSequence] = set()
        self._sampled = 0
        self._context = settings.n_ctx
        self._served_model = settings.served_model
        self._started = False
        self._closed = False
        self._pieces: asyncio.Future[PieceIndex] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Probe every upstream, settle the context length, start the health checks."""
        pool = self._pool
        await pool.check_all()
        infos = [u.info for u in pool.upstreams if u.info is not None]
        if self._context is None:
            contexts = [i.context_length for i in infos if i.context_length]
            if not contexts:
                reasons = "; ".join(f"{u.url}: {u.reason}" for u in pool.upstreams)
                raise EngineFailure(
                    f"remote engine {self._settings.name!r}: no upstream told its context length "
                    f"and n_ctx is not set ({reasons})"
                )
            self._context = min(contexts)
        if self._served_model is None:
            self._served_model = next((i.model for i in infos if i.model), None)
        for upstream in pool.upstreams:
            if not upstream.routable:
                log.warning("upstream %s is not up yet: %s", upstream.url, upstream.reason)
        pool.start_health_checks()
        self._started = True
        log.info("remote engine %s: %s", self._settings.name, self.describe())

    async def aclose(self) -> None:
        self._closed = True
        for sequence in list(self._live):
            sequence.cancel()
        await self._pool.aclose()
        if self._vocab.close is not None:
            self._vocab.close()

    # -- Engine ----------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> RemoteTokenizer:
        return self._vocab.tokenizer

    @property
    def context_length(self) -> int:
        if self._context is None:
            raise EngineFailure("The inference engine is not started.")
        return self._context

    def submit(self, request: EngineRequest) -> RemoteSequence:
        if not self._started or self._closed:
            raise EngineFailure("The inference engine is not running.")
        limit = self.context_length
        prompt = request.prompt
        if not 1 <= len(prompt) < limit:
            raise InvalidParameter(f"Range of input length should be [1, {limit - 1}]")
        if min(prompt) < 0 or max(prompt) >= self.tokenizer.n_vocab:
            raise InvalidParameter("Token id out of range.")
        if request.max_tokens < 1:
            raise InvalidParameter(f"Range of max_tokens should be [1, {limit}]", param="max_tokens")
        if len(self._live) >= self._settings.max_queue:
            raise Overloaded("The engine queue is full; retry later.")
        first = self._pool.choose(prompt)
        if first is None:
            raise NoUpstream("No upstream engine server is available; retry later.")
        sequence = RemoteSequence(self, request, first)
        self._live.add(sequence)
        return sequence

    def health(self) -> Health:
        if self._closed:
            return Health("stopped")
        if not self._started:
            return Health("starting", "Probing the upstream engine servers.")
        if self._pool.routable():
            return Health("up", self.describe())
        reasons = "; ".join(f"{u.url}: {u.reason}" for u in self._pool.upstreams)
        return Health("down", f"no upstream engine server is up ({reasons})")

    def snapshot(self) -> EngineStats:
        return EngineStats(active_sequences=len(self._live), sampled_tokens=self._sampled)

    # -- Host (seen by the sequences) ------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        return self._pool

    @property
    def served_model(self) -> str | None:
        return self._served_model

    @property
    def whole_max_tokens(self) -> int:
        return self._settings.whole_max_tokens

    def decoder(self) -> Decoder:
        return self._vocab.decoder()

    async def pieces(self) -> PieceIndex:
        if self._pieces is None:
            tokenizer = self.tokenizer
            build = asyncio.to_thread(PieceIndex.build, tokenizer.token_bytes, tokenizer.n_vocab)
            self._pieces = asyncio.ensure_future(build)
        # Shielded: a sequence cancelled while it waits leaves the index to the others.
        return await asyncio.shield(self._pieces)

    def sampled(self, n: int) -> None:
        self._sampled += n

    def ended(self, sequence: RemoteSequence) -> None:
        self._live.discard(sequence)

    # -- observability ---------------------------------------------------------------------------

    def upstream_stats(self) -> list[UpstreamStats]:
        return [u.stats() for u in self._pool.upstreams]

    def describe(self) -> str:
        """``remote, 1/2 upstreams up, context 4096 (out: http://a:8000: cannot connect: ...)``."""
        upstreams = self._pool.upstreams
        up = sum(1 for u in upstreams if u.routable)
        text = f"remote, {up}/{len(upstreams)} upstreams up, context {self._context}"
        out = "; ".join(f"{u.url}: {u.reason}" for u in upstreams if not u.routable)
        return f"{text} (out: {out})" if out else text


async def build_remote(settings: RemoteSettings) -> RemoteEngine:
    """Load the tokenizer (off the event loop), probe the upstreams, start."""
    from thinkserve.engine.remote.vocab import load_vocab

    settings.check()
    assert settings.tokenizer is not None
    vocab = await asyncio.to_thread(load_vocab, settings.tokenizer)
    engine = RemoteEngine(settings, vocab)
    try:
        await engine.start()
    except BaseException:
        await engine.aclose()
        raise
    return engine
