"""A scripted vLLM-protocol upstream over ``httpx.MockTransport``, for the pool's failure paths.

Fast and deterministic where the loopback server (``token_server``, the real engine) is not: it
refuses connections, answers 500, or breaks a stream after N tokens on demand. Its tokenizer is
the scripted engine's (one token per character), with ``n_vocab`` and ``is_eog`` added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from thinkserve.engine.fake.tokenizer import FakeTokenizer
from thinkserve.engine.remote.settings import RemoteSettings
from thinkserve.engine.remote.vocab import Vocab


class ScriptTokenizer(FakeTokenizer):
    n_vocab = 0x110000 + 16 + 5

    def is_eog(self, token: int) -> bool:
        return self.is_end(token)


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


class _Broken(httpx.AsyncByteStream):
    """Some SSE lines, then the connection drops."""

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for line in self._lines:
            yield line
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


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
    reply_ids: list[int] | None = None
    """Token ids to send instead of the reply's."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[list[int]] = field(default_factory=list)

    def handler(self, tokenizer: ScriptTokenizer) -> Callable[[httpx.Request], httpx.Response]:
        def handle(request: httpx.Request) -> httpx.Response:
            if self.down:
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            path = request.url.path
            if path == "/props":
                return httpx.Response(404)
            if path == "/health":
                return httpx.Response(200)
            if path == "/v1/models":
                card = {"id": "scripted", "owned_by": "vllm", "max_model_len": self.context}
                return httpx.Response(200, json={"object": "list", "data": [card]})
            body = orjson.loads(request.content)
            self.requests.append(body)
            if self.status != 200:
                return httpx.Response(self.status, json={"error": {"message": "scripted failure"}})
            return self._complete(body, tokenizer)

        return handle

    def _complete(self, body: dict[str, Any], tokenizer: ScriptTokenizer) -> httpx.Response:
        prompt: list[int] = body["prompt"]
        cached = max((_common(prompt, old) for old in self.prompts), default=0)
        self.prompts.append(prompt)
        script = self.reply_ids if self.reply_ids is not None else tokenizer.encode(self.reply)
        # Continue the script from where the prompt already is (a continuation after a pause).
        start = _resume_point(prompt, script, tokenizer)
        out = script[start : start + body["max_tokens"]]
        ended = start + len(out) >= len(script)
        lines = []
        for i, token in enumerate(out):
            last = i == len(out) - 1
            finish = ("stop" if ended else "length") if last else None
            choice = {"index": 0, "text": "", "token_ids": [token], "finish_reason": finish}
            lines.append(b"data: " + orjson.dumps({"choices": [choice]}) + b"\n\n")
        if self.break_after is not None:
            return httpx.Response(200, stream=_Broken(lines[: self.break_after]))
        usage = {"prompt_tokens": len(prompt), "prompt_tokens_details": {"cached_tokens": cached}}
        lines.append(b"data: " + orjson.dumps({"choices": [], "usage": usage}) + b"\n\n")
        lines.append(b"data: [DONE]\n\n")
        return httpx.Response(200, content=b"".join(lines), headers={"content-type": "text/event-stream"})


def _common(a: list[int], b: list[int]) -> int:
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


def transport(scripts: dict[str, Script], tokenizer: ScriptTokenizer) -> httpx.MockTransport:
    """One mock transport routing by host to each script: ``{"http://a": Script(), ...}``."""
    handlers = {url.split("//", 1)[1]: s.handler(tokenizer) for url, s in scripts.items()}

    def route(request: httpx.Request) -> httpx.Response:
        return handlers[request.url.netloc.decode()](request)

    return httpx.MockTransport(route)


def settings(*urls: str, **changes: Any) -> RemoteSettings:
    return RemoteSettings("default", tokenizer="scripted", upstreams=urls, **changes)  # type: ignore[arg-type]
