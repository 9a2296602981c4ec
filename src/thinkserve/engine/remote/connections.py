"""Kept-alive HTTP/1.1 connections to one engine server, for its completions (imports nothing of
thinkserve; httptools parses the responses, aiohttp's resolver interface names the addresses).

The completion path of the remote engine is one POST per completion, answered with a body that is
read whole or piece by piece. aiohttp's client spends about 150 us of CPU on each such request on
the 2-core test VM; this one, a protocol per connection and httptools' C parser, about 50 us
(``bench/gateway.py`` counts every one against the gateway). What it does::

    origin = Origin("http://10.0.0.5:8000", connect_timeout=2.0, read_timeout=120.0)
    exchange = await origin.post("/v1/completions", b'{"prompt": [1, 2], ...}')
    exchange.status                  # 200, once the status line and headers came
    await exchange.read_some()       # the next piece of the body; b"" at its end
    await exchange.read()            # or the rest of it, whole
    exchange.close()                 # always: read to its end, the connection goes back to the
                                     # pool; else it is closed, which is how the server hears of
                                     # a cancel

Every failure is an ``HttpFailure`` with a kind: ``connect`` (no connection: refused,
unreachable, timed out), ``timeout`` (nothing came within ``read_timeout`` while waiting), or
``stream`` (the connection broke, or the reply is not HTTP). No redirects are followed, no proxy
is used, no cookie is kept: engine servers sit on the internal network.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from typing import Literal, cast
from urllib.parse import urlsplit

import httptools
from aiohttp.abc import AbstractResolver

FailureKind = Literal["connect", "timeout", "stream"]

_HEAD = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


class HttpFailure(Exception):
    """A request that failed at the HTTP level; ``kind`` as in the module docstring."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind


class Origin:
    """The connections to one server (scheme, host, port); one request at a time on each."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``resolver`` maps host names to addresses (tests point made-up hosts at local servers)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._base = parts.path.rstrip("/").encode()
        self._host_header = parts.netloc.rpartition("@")[2].encode()
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._resolver = resolver
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    async def post(self, path: str, body: bytes) -> Exchange:
        """Send ``body`` (JSON) to ``path`` and wait for the reply's status line and headers."""
        connection = self._reused() or await self._connect()
        head = _HEAD % (self._base + path.encode(), self._host_header, len(body))
        exchange = Exchange(self, connection)
        try:
            connection.send(head + body)
            await connection.headers()
        except BaseException:
            exchange.close()
            raise
        exchange.status = connection.status
        return exchange

    def release(self, connection: _Connection, *, reuse: bool) -> None:
        if reuse and connection.reusable:
            connection.start_idle()
            self._idle.append(connection)
        else:
            connection.close()
            self._all.discard(connection)

    def close(self) -> None:
        """Close every connection: requests in flight fail with ``stream``."""
        for connection in self._all:
            connection.close()
        self._all.clear()
        self._idle.clear()

    def _reused(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.reusable:
                return connection
            self._all.discard(connection)  # the server closed it while it waited
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        host, port = self._host, self._port
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._resolver is not None:
                    found = await self._resolver.resolve(host, port, socket.AF_INET)
                    host, port = found[0]["host"], found[0]["port"]
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self._read_timeout),
                    host,
                    port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError as exc:
            raise HttpFailure("connect", f"no connection to {self._host}:{self._port} in time") from exc
        except OSError as exc:
            raise HttpFailure("connect", f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        self._all.add(connection)
        return connection


class Exchange:
    """One request and its reply on one connection; ``close`` it once done with it."""

    __slots__ = ("_connection", "_origin", "status")

    def __init__(self, origin: Origin, connection: _Connection) -> None:
        self._origin = origin
        self._connection: _Connection | None = connection
        self.status = 0
        """The reply's status code, once ``Origin.post`` returned it."""

    async def read_some(self) -> bytes:
        """The next piece of the body as it came from the socket; b"" once it is all read."""
        assert self._connection is not None
        return await self._connection.piece()

    async def read(self) -> bytes:
        """The rest of the body."""
        pieces = []
        while piece := await self.read_some():
            pieces.append(piece)
        return b"".join(pieces)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._origin.release(connection, reuse=connection.complete)


class _Connection(asyncio.Protocol):
    """One TCP connection, its response parser and what came of the current reply."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._pieces: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: HttpFailure | None = None
        self._lost = False
        self._framed = False
        """The reply says where its body ends (a length, or chunks); else the close ends it."""
        self._headers_done = False
        self.complete = False
        """The reply came whole: the connection may take the next request."""
        self._keep_alive = False
        self.status = 0

    @property
    def reusable(self) -> bool:
        return not self._lost and self.complete and self._keep_alive and self._error is None

    def send(self, data: bytes) -> None:
        if self._lost or self._transport is None:
            raise HttpFailure("stream", "the connection was closed")
        self._parser = httptools.HttpResponseParser(self)
        self._pieces.clear()
        self._headers_done = self.complete = self._framed = False
        self.status = 0
        self._transport.write(data)

    def start_idle(self) -> None:
        # Nothing is expected while idle: a close by the server is noticed in connection_lost.
        self._pieces.clear()

    def close(self) -> None:
        self._lost = True
        if self._transport is not None:
            self._transport.close()

    async def headers(self) -> None:
        while not self._headers_done:
            await self._wait()

    async def piece(self) -> bytes:
        while not self._pieces:
            if self.complete:
                return b""
            await self._wait()
        return self._pieces.popleft()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(self._read_timeout, _expire, waiter, self._read_timeout)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None and not self._pieces and not self.complete:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not registered as asyncio.Transport.)
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # The request goes in one write: no reason to wait for an ACK before sending it.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            self._fail("the server sent a reply to no request")
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the server switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(f"the reply is not HTTP: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._headers_done and not self._framed and not self.complete:
            self.complete = True  # a body that the close ends (HTTP/1.0 style)
        elif not self.complete:
            reason = f": {exc}" if exc is not None else ""
            self._error = self._error or HttpFailure("stream", f"the server closed the connection{reason}")
        self._wake()

    def _fail(self, message: str) -> None:
        self._error = HttpFailure("stream", message)
        if self._transport is not None:
            self._transport.close()
        self._wake()

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        self._headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()


def _expire(waiter: asyncio.Future[None], seconds: float) -> None:
    if not waiter.done():
        waiter.set_exception(HttpFailure("timeout", f"nothing came from the server in {seconds:g} s"))
