"""One engine server: its connection pool, protocol, health state and counters (imports core,
engine.remote).

``chunks(body)`` streams one completion and turns every way it can fail into an
``UpstreamFailure`` with a kind, which decides what the pool does about it:

=========== ================================================ ============================
kind        what happened                                    consequence
=========== ================================================ ============================
connect     no connection (refused, unreachable, timed out)  ejected at once
timeout     no chunk within ``read_timeout``                 counts towards ``eject_after``
stream      the connection broke mid-stream                  counts towards ``eject_after``
status      a 5xx answer                                     counts towards ``eject_after``
protocol    a reply that is not the protocol, or says failed counts towards ``eject_after``
busy        429, or no free connection in the pool           another upstream; not counted
rejected    another 4xx: the request itself is wrong         no other upstream; not counted
=========== ================================================ ============================

Every kind but ``rejected`` may go to another upstream if the request has not sent a token yet.
An ejected upstream is probed every ``health_interval`` and returns once a probe succeeds after
its time out (``eject_for``, doubling while it keeps failing soon after returning, up to 60 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, Literal

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver

from thinkserve.engine.remote.connections import Exchange, HttpFailure, Origin
from thinkserve.engine.remote.events import EventReader
from thinkserve.engine.remote.llamacpp_wire import LlamaCppWire
from thinkserve.engine.remote.probe import probe
from thinkserve.engine.remote.settings import RemoteSettings, UpstreamSpec
from thinkserve.engine.remote.stats import UpstreamCounters, UpstreamStats
from thinkserve.engine.remote.vllm_wire import VllmWire
from thinkserve.engine.remote.wire import Chunk, ServerInfo, Wire, WireError

log = logging.getLogger("thinkserve.engine.remote")

State = Literal["unknown", "up", "ejected"]
FailureKind = Literal["connect", "timeout", "stream", "status", "protocol", "busy", "rejected"]

MAX_EJECTION_S = 60.0
"""The longest time out; also how long an upstream must stay up for its next ejection to start
again from ``eject_for``."""


class UpstreamFailure(Exception):
    """A completion that failed at an upstream (see the module docstring for the kinds)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.message = message

    @property
    def counts(self) -> bool:
        """Whether it speaks of the upstream's health (and counts towards ejection)."""
        return self.kind not in ("busy", "rejected")

    @property
    def retryable(self) -> bool:
        """Whether another upstream may take the request."""
        return self.kind != "rejected"


def wire_for(info: ServerInfo) -> Wire:
    return VllmWire() if info.protocol == "vllm" else LlamaCppWire()


class Upstream:
    """One server of the pool; all of it runs on the engine's event loop."""

    def __init__(
        self,
        spec: UpstreamSpec,
        settings: RemoteSettings,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``resolver`` maps host names to addresses (tests point made-up hosts at local servers)."""
        self.spec = spec
        self.url = spec.url
        self.weight = spec.weight
        self._settings = settings
        self._resolver = resolver
        # The pool's limit: a request waits at most ``read_timeout`` for one of ``max_connections``
        # (then it is "busy"), so the connector below never queues.
        self._slots = asyncio.Semaphore(settings.max_connections)
        # Completions: kept-alive connections of our own (``connections``: a fraction of aiohttp's
        # CPU per request). Probes and detection stay on aiohttp.
        self._origin = Origin(
            spec.url,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            resolver=resolver,
        )
        # Probes get a connection of their own: with every pooled one busy streaming, a probe
        # waiting for one would time out and eject a server that is merely busy.
        self._probes: aiohttp.ClientSession | None = None
        self._urls: dict[str, str] = {}
        self.info: ServerInfo | None = None
        self.wire: Wire | None = None
        self.state: State = "unknown"
        self.reason = "not probed yet"
        self.in_flight = 0
        self.failures = 0
        """Consecutive counted failures."""
        self.epoch = 0
        """Bumped at every ejection: prefix-affinity entries of an older epoch are stale."""
        self.ejected_until = 0.0
        self._streak = 0
        self._returned_at = float("-inf")
        self.counters = UpstreamCounters()

    @property
    def routable(self) -> bool:
        return self.state == "up" and self.wire is not None

    def stats(self) -> UpstreamStats:
        protocol = self.wire.name if self.wire is not None else (self.spec.protocol or "unknown")
        return UpstreamStats(
            self.url,
            protocol,
            self.routable,
            self.state,
            self.reason,
            self.in_flight,
            self.weight,
            self.counters,
        )

    @property
    def probes(self) -> aiohttp.ClientSession:
        if self._probes is None:
            # Made on first use: aiohttp wants the running event loop. trust_env=False: engine
            # servers sit on the internal network; no proxy from the environment.
            timeout = aiohttp.ClientTimeout(total=5.0, sock_connect=self._settings.connect_timeout)
            connector = aiohttp.TCPConnector(limit=1, limit_per_host=0, resolver=self._resolver)
            self._probes = aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)
        return self._probes

    def _url(self, path: str) -> str:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self.url + path
        return url

    # -- health ---------------------------------------------------------------------------------

    async def check(self) -> None:
        """One health probe: detect the server first, then ``GET /health``; eject or return."""
        now = time.monotonic()
        try:
            if self.info is None:
                self.learn(await probe(self.probes, self.url, self.spec.protocol))
            else:
                async with self.probes.get(self._url("/health"), allow_redirects=False) as response:
                    await response.read()
                    if response.status != 200:
                        raise WireError(f"GET /health answered {response.status}")
        except (aiohttp.ClientError, TimeoutError, WireError) as exc:
            reason = f"health check failed: {_describe(exc)}"
            if self.state == "up":
                self.eject(reason, now)
            else:
                self.reason = reason
            return
        if self.state == "unknown" or (self.state == "ejected" and now >= self.ejected_until):
            self._back(now)

    def learn(self, info: ServerInfo) -> None:
        if self.info is None:
            log.info(
                "upstream %s: %s, context %s, model %s",
                self.url,
                info.protocol,
                info.context_length,
                info.model,
            )
        self.info = info
        self.wire = wire_for(info)

    def eject(self, reason: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.reason = reason
        if self.state == "ejected":
            return
        self._streak = self._streak + 1 if now - self._returned_at < MAX_EJECTION_S else 0
        out_for = min(self._settings.eject_for * 2**self._streak, MAX_EJECTION_S)
        self.state = "ejected"
        self.ejected_until = now + out_for
        self.epoch += 1
        self.counters.ejections += 1
        log.warning("upstream %s ejected for %.0f s: %s", self.url, out_for, reason)

    def _back(self, now: float) -> None:
        if self.state == "ejected":
            self.counters.returns += 1
            log.info("upstream %s is back", self.url)
        self.state = "up"
        self.reason = ""
        self.failures = 0
        self._returned_at = now

    # -- outcomes of requests -------------------------------------------------------------------

    def failed(self, failure: UpstreamFailure) -> None:
        self.counters.count(self.counters.errors, failure.kind)
        if failure.kind == "connect":
            self.eject(f"cannot connect: {failure.message}")
        elif failure.counts:
            self.failures += 1
            if self.failures >= self._settings.eject_after:
                self.eject(f"{self.failures} requests failed in a row, the last: {failure.message}")

    def succeeded(self) -> None:
        self.failures = 0

    # -- one completion -------------------------------------------------------------------------

    async def chunks(self, body: Any, *, stream: bool = True) -> AsyncGenerator[Chunk, None]:
        """Stream one completion; raises ``UpstreamFailure``. Close it (``aclosing``) to abort.

        ``stream=False`` (a body that asks for the completion whole): one chunk, at the end."""
        wire = self.wire
        if wire is None:
            raise UpstreamFailure("connect", "the server was never reached")
        slots = self._slots
        if slots.locked():
            try:
                async with asyncio.timeout(self._settings.read_timeout):
                    await slots.acquire()
            except TimeoutError as exc:
                raise UpstreamFailure("busy", "no free connection to the server") from exc
        else:
            await slots.acquire()
        exchange: Exchange | None = None
        try:
            exchange = await self._origin.post(wire.path, orjson.dumps(body))
            if exchange.status != 200:
                raise _status_failure(exchange.status, await exchange.read())
            if not stream:
                yield wire.chunk(orjson.loads(await exchange.read()))
            else:
                # Every read at once (``events``): its events' tokens go on together.
                reader = EventReader(wire)
                while data := await exchange.read_some():
                    chunk = reader.feed(data)
                    if chunk.tokens or chunk.finish is not None or chunk.cached_tokens is not None:
                        yield chunk
                    reader.raise_pending()  # an event after the ones just handed out failed
                # After the done line the body was still read to its end (nothing but its
                # terminator): a response left half-read closes its connection instead of going
                # back to the pool.
                chunk = reader.end()
                if chunk.tokens or chunk.finish is not None or chunk.cached_tokens is not None:
                    yield chunk
                reader.raise_pending()
        except HttpFailure as exc:
            raise UpstreamFailure(exc.kind, str(exc)) from exc
        except (WireError, orjson.JSONDecodeError) as exc:
            raise UpstreamFailure("protocol", str(exc)) from exc
        finally:
            if exchange is not None:
                exchange.close()
            slots.release()

    async def aclose(self) -> None:
        self._origin.close()
        if self._probes is not None:
            await self._probes.close()
        self._probes = None


def _status_failure(status: int, raw: bytes) -> UpstreamFailure:
    detail = raw[:300].decode("utf-8", errors="replace")
    message = f"HTTP {status}: {detail}"
    if status == 429:
        return UpstreamFailure("busy", message)
    if 400 <= status < 500:
        return UpstreamFailure("rejected", message)
    return UpstreamFailure("status", message)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
