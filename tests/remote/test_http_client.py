"""The remote engine's own HTTP/1.1 client (``engine.remote.connections``) against raw servers:
framings, keep-alive, and every way a reply can fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import uvloop

from thinkserve.engine.remote.connections import HttpFailure, Origin

Reply = Callable[[bytes], bytes | None]
"""The request's bytes -> what to answer (None: answer nothing and keep the connection)."""


@asynccontextmanager
async def server(reply: Reply, *, close_after: bool = False) -> AsyncIterator[tuple[str, list[int]]]:
    """A server answering each request with ``reply``; yields its URL and each connection's count
    of requests."""
    counts: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts.append(0)
        index = len(counts) - 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                counts[index] += 1
                answer = reply(head + body)
                if answer is None:
                    await asyncio.sleep(3600)
                    continue
                writer.write(answer)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/base", counts
    finally:
        listening.close()


def run(factory: Callable[[], Awaitable[None]]) -> None:
    for loop_factory in (None, uvloop.new_event_loop):  # the tests' loop and the server's
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(asyncio.wait_for(factory(), 10))


def origin(url: str, read_timeout: float = 5.0) -> Origin:
    return Origin(url, connect_timeout=1.0, read_timeout=read_timeout)


def ok(body: bytes, *headers: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def test_a_length_framed_reply_and_the_connection_is_kept() -> None:
    async def body() -> None:
        seen: list[bytes] = []

        def reply(request: bytes) -> bytes:
            seen.append(request)
            return ok(b'{"ok": true}', b"Content-Length: 12")

        async with server(reply) as (url, counts):
            pool = origin(url)
            for _ in range(3):
                exchange = await pool.post("/v1/completions", b'{"a": 1}')
                assert exchange.status == 200 and await exchange.read() == b'{"ok": true}'
                exchange.close()
            assert counts == [3]  # one connection for all three
            assert seen[0].startswith(b"POST /base/v1/completions HTTP/1.1\r\nHost: 127.0.0.1:")
            assert seen[0].endswith(b'Content-Length: 8\r\n\r\n{"a": 1}')
            pool.close()

    run(body)


def test_a_chunked_reply_comes_piece_by_piece() -> None:
    async def body() -> None:
        chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        async with server(lambda _: ok(chunked, b"Transfer-Encoding: chunked")) as (url, counts):
            pool = origin(url)
            exchange = await pool.post("/x", b"{}")
            pieces = []
            while piece := await exchange.read_some():
                pieces.append(piece)
            assert b"".join(pieces) == b"hello world"
            exchange.close()
            exchange = await pool.post("/x", b"{}")
            assert await exchange.read() == b"hello world"
            exchange.close()
            assert counts == [2]
            pool.close()

    run(body)


def test_a_reply_that_the_close_ends_and_connection_close() -> None:
    async def body() -> None:
        async with server(lambda _: ok(b"all of it"), close_after=True) as (url, counts):
            pool = origin(url)
            for _ in range(2):
                exchange = await pool.post("/x", b"{}")
                assert await exchange.read() == b"all of it"
                exchange.close()
            assert counts == [1, 1]  # not kept: the server closed it
        framed = ok(b"{}", b"Content-Length: 2", b"Connection: close")
        async with server(lambda _: framed) as (url, counts):
            pool = origin(url)
            for _ in range(2):
                exchange = await pool.post("/x", b"{}")
                assert exchange.status == 200 and await exchange.read() == b"{}"
                exchange.close()
            assert counts == [1, 1]  # the server said it would close it

    run(body)


def test_an_exchange_closed_early_closes_its_connection() -> None:
    async def body() -> None:
        partial = ok(b"5\r\nhello\r\n", b"Transfer-Encoding: chunked")
        async with server(lambda _: partial) as (url, counts):
            pool = origin(url)
            exchange = await pool.post("/x", b"{}")
            assert await exchange.read_some() == b"hello"
            exchange.close()  # the rest never came: not reusable
            exchange = await pool.post("/x", b"{}")
            exchange.close()
            assert counts == [1, 1]

    run(body)


@pytest.mark.parametrize(
    ("reply", "kind", "message"),
    [
        (lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "stream", "closed"),
        (lambda _: b"SMTP ready\r\n\r\n", "stream", "not HTTP"),
        (lambda _: None, "timeout", "nothing came"),
    ],
)
def test_failures_have_their_kind(reply: Reply, kind: str, message: str) -> None:
    async def body() -> None:
        async with server(reply, close_after=True) as (url, _):
            pool = origin(url, read_timeout=0.3)
            with pytest.raises(HttpFailure, match=message) as failure:
                exchange = await pool.post("/x", b"{}")
                await exchange.read()
            assert failure.value.kind == kind
            pool.close()

    run(body)


def test_a_refused_connection_is_connect_and_the_status_is_read() -> None:
    async def body() -> None:
        async with server(lambda _: None) as (url, _):
            pass  # closed: nothing listens there any more
        with pytest.raises(HttpFailure) as failure:
            await origin(url).post("/x", b"{}")
        assert failure.value.kind == "connect"
        error = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
        async with server(lambda _: error) as (url, _):
            exchange = await origin(url).post("/x", b"{}")
            assert exchange.status == 503 and await exchange.read() == b"busy"
            exchange.close()

    run(body)
