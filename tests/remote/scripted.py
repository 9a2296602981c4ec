"""Scripted upstreams on loopback (vLLM's protocol, or llama.cpp server's), for the pool's failure
paths.

Fast and deterministic where the token server (``token_server``, the real engine) is not: it
refuses connections, answers 500, or breaks a stream after N tokens on demand. Each script is an
aiohttp server on a free port; ``serving`` yields a resolver that points the made-up host of its
URL (``http://a.test``) there, or at a closed port while the script is ``down``. Its tokenizer is
the scripted engine's (one token per character), with ``n_vocab`` and ``is_eog`` added.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from thinkserve.engine.fake.tokenizer import FakeTokenizer
from thinkserve.engine.remote.settings import RemoteSettings
from thinkserve.engine.remote.vocab import Vocab


class ScriptTokenizer(FakeTokenizer):
    n_vocab = 0x110000 + 16 + 5

    def is_eog(self, token: int) -> bool:
        return self.is_end(token)

    def token_bytes(self, token: int) -> bytes:
        try:
            return self.piece(token).encode("utf-8")
        except ValueError:  # below the offset, or a surrogate: no character
            return b""


class _Decoder:
    def __init__(self, tokenizer: ScriptTokenizer) -> None:
        self._tokenizer = tokenizer

    def feed(self, token: int) -> str:
        return self._tokenizer.piece(token)

    def flush(self) -> str:
        return ""


def script_vocab() -> Vocab:
    tokenizer = ScriptTokenizer()
    return Vocab(tokenizer, lambda: _Decoder(tokenizer))


@dataclass
class Script:
    """One scripted upstream: its reply text and how it misbehaves."""

    reply: str = "<think>\nLet me think about it for a while.\n</think>\n\nThe answer is 19.<|im_end|>"
    context: int = 4096
    down: bool = False
    """Refuse connections."""
    status: int = 200
    """Answer completions with this status (500: a server error)."""
    break_after: int | None = None
    """Drop the connection after this many tokens."""
    delay: float = 0.0
    """Seconds before the first token (a long prefill, or a server that hangs)."""
    gap: float = 0.0
    """Seconds between two tokens (a stream that holds its connection a while)."""
    reply_ids: list[int] | None = None
    """Token ids to send instead of the reply's."""
    protocol: str = "vllm"
    """``llamacpp``: ``/props`` and ``/completion``, in llama.cpp server's shape."""
    withhold: frozenset[int] = frozenset()
    """llama.cpp: positions in a completion sent only as text in the next token's event (what
    the real server does with a token that ends inside a UTF-8 character)."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    wholes: int = 0
    """Completions asked with ``"stream": false`` (answered whole)."""
    prompts: list[list[int]] = field(default_factory=list)

    def handler(self, tokenizer: ScriptTokenizer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            path = request.path
            if path == "/props":
                if self.protocol != "llamacpp":
                    return web.Response(status=404)
                return _json(200, {"default_generation_settings": {"n_ctx": self.context}})
            if path == "/health":
                return web.Response(status=200)
            if path == "/v1/models":
                card = {"id": "scripted", "owned_by": "vllm", "max_model_len": self.context}
                return _json(200, {"object": "list", "data": [card]})
            body = orjson.loads(await request.read())
            self.requests.append(body)
            if self.status != 200:
                return _json(self.status, {"error": {"message": "scripted failure"}})
            return await self._complete(request, body, tokenizer)

        return handle

    async def _complete(
        self, request: web.Request, body: dict[str, Any], tokenizer: ScriptTokenizer
    ) -> web.StreamResponse:
        prompt: list[int] = body["prompt"]
        cached = max((common_prefix(prompt, old) for old in self.prompts), default=0)
        self.prompts.append(prompt)
        script = self.reply_ids if self.reply_ids is not None else tokenizer.encode(self.reply)
        # Continue the script from where the prompt already is (a continuation after a pause).
        start = _resume_point(prompt, script, tokenizer)
        out = script[start : start + body.get("max_tokens", body.get("n_predict", 0))]
        ended = start + len(out) >= len(script)
        if self.protocol == "llamacpp":
            return await self._llamacpp(
                request, out, ended, cached, tokenizer, stream=bool(body.get("stream"))
            )
        usage = {"prompt_tokens": len(prompt), "prompt_tokens_details": {"cached_tokens": cached}}
        if not body.get("stream"):
            return await self._whole(request, out, "stop" if ended else "length", usage)
        lines = []
        for i, token in enumerate(out):
            last = i == len(out) - 1
            finish = ("stop" if ended else "length") if last else None
            choice = {"index": 0, "text": "", "token_ids": [token], "finish_reason": finish}
            lines.append(b"data: " + orjson.dumps({"choices": [choice]}) + b"\n\n")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.break_after is not None:
            for line in lines[: self.break_after]:
                await response.write(line)
            # Drop the connection mid-body (no chunked terminator).
            assert request.transport is not None
            request.transport.abort()
            return response
        if self.gap:
            for line in lines:
                await response.write(line)
                await asyncio.sleep(self.gap)
            lines = []
        lines.append(b"data: " + orjson.dumps({"choices": [], "usage": usage}) + b"\n\n")
        lines.append(b"data: [DONE]\n\n")
        await response.write(b"".join(lines))
        await response.write_eof()
        return response

    async def _whole(
        self, request: web.Request, out: list[int], finish: str, usage: dict[str, Any]
    ) -> web.StreamResponse:
        """A completion asked with ``"stream": false``: one object once it is done."""
        self.wholes += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.break_after is not None:
            assert request.transport is not None
            request.transport.abort()  # the connection drops before the answer
            return web.StreamResponse()
        choice = {"index": 0, "text": "", "token_ids": out, "finish_reason": finish}
        return _json(200, {"choices": [choice], "usage": usage})

    async def _llamacpp(
        self,
        request: web.Request,
        out: list[int],
        ended: bool,
        cached: int,
        tokenizer: ScriptTokenizer,
        *,
        stream: bool,
    ) -> web.StreamResponse:
        final = {"content": "", "tokens": [], "stop": True, "stop_type": "eos" if ended else "limit"}
        final |= {"tokens_predicted": len(out), "timings": {"cache_n": cached}}
        if not stream:
            # One object like the last event, with every id and the whole text (as the real server).
            self.wholes += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            final |= {"content": "".join(tokenizer.piece(t) for t in out), "tokens": out}
            return _json(200, final)
        lines = []
        held = ""
        for i, token in enumerate(out):
            text = held + tokenizer.piece(token)
            if i in self.withhold:
                held = text
                continue
            held = ""
            event = {"content": text, "tokens": [token], "stop": False, "tokens_predicted": i + 1}
            lines.append(b"data: " + orjson.dumps(event) + b"\n\n")
        lines.append(b"data: " + orjson.dumps(final) + b"\n\n")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"".join(lines))
        await response.write_eof()
        return response


def _json(status: int, data: object) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading items ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _resume_point(prompt: list[int], script: list[int], tokenizer: ScriptTokenizer) -> int:
    """Where the script goes on for this prompt: after what the assistant turn already holds of it,
    else after ``</think>`` if the turn closed its think block another way (the budget's text)."""
    turn = tokenizer.token_id("<|im_start|>")
    end = tokenizer.token_id("</think>")
    opened = max(i for i, t in enumerate(prompt) if t == turn) if turn in prompt else 0
    for n in range(min(len(prompt) - opened, len(script)), 0, -1):
        if prompt[-n:] == script[:n]:
            return n
    if end in prompt[opened:] and end in script:
        start = script.index(end) + 1
        while start < len(script) and tokenizer.piece(script[start]) == "\n":
            start += 1
        return start
    return 0


class _Resolver(AbstractResolver):
    """``a.test`` -> the loopback port of its script, or a closed one while it is down."""

    def __init__(self, ports: dict[str, int], scripts: dict[str, Script], closed: int) -> None:
        self._ports = ports
        self._scripts = scripts
        self._closed = closed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = self._closed if self._scripts[host].down else self._ports[host]
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=target, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


@asynccontextmanager
async def serving(scripts: dict[str, Script], tokenizer: ScriptTokenizer) -> AsyncIterator[AbstractResolver]:
    """Serve every script on loopback: ``async with serving({"http://a.test": Script()}, t) as r``."""
    runners: list[web.AppRunner] = []
    ports: dict[str, int] = {}
    by_host: dict[str, Script] = {}
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]  # nothing listens there once this socket is closed
    try:
        for url, script in scripts.items():
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", script.handler(tokenizer))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host = url.split("//", 1)[1]
            server = site._server
            assert server is not None
            ports[host] = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            by_host[host] = script
        yield _Resolver(ports, by_host, closed)
    finally:
        for runner in runners:
            await runner.cleanup()


def settings(*urls: str, **changes: Any) -> RemoteSettings:
    return RemoteSettings("default", tokenizer="scripted", upstreams=urls, **changes)  # type: ignore[arg-type]
