"""A loopback engine server for the remote-engine tests: the REAL embedded llama.cpp engine behind
vLLM's token-level completions protocol, or behind llama.cpp server's ``/completion``.

Token ids, sampling, counts and prefix caching are the real engine's; only the HTTP shape is
re-created from the two servers' documentation and sources (see ``engine/remote/vllm_wire.py``
and ``llamacpp_wire.py`` for the exact fields; tests/remote/test_llamacpp_real.py runs the real
``llama-server``). Run it as a process, so a test can kill it::

    python -m tests.remote.token_server --model tests/fixtures/tiny-qwen3.gguf --port 8101 \\
        [--protocol vllm|llamacpp] [--token-delay 0.01] [--first-token-delay 1.0]

``GET /test/stats`` tells how many completions it took and how many were cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from thinkserve.core.types import SamplingParams
from thinkserve.engine.llamacpp.engine import LlamaCppEngine
from thinkserve.engine.protocol import EngineFinished, EngineRequest, TokenEvent

Event = TokenEvent | EngineFinished


@dataclass
class Options:
    model: str
    protocol: str = "vllm"
    n_ctx: int = 4096
    n_seq: int = 4
    token_delay: float = 0.0
    first_token_delay: float = 0.0
    name: str = "tiny-qwen3"


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(message: str, status: int = 400) -> Response:
    return _json({"error": {"message": message, "type": "BadRequestError", "code": status}}, status)


def _sse(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class TokenServer:
    """The routes of both protocols over one engine."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.engine = LlamaCppEngine(options.model, n_ctx=options.n_ctx, n_seq=options.n_seq)
        self.completions = self.cancelled = self.finished = 0

    def app(self) -> Starlette:
        routes = [Route("/health", self.health), Route("/test/stats", self.stats)]
        if self.options.protocol == "vllm":
            routes += [
                Route("/v1/models", self.models),
                Route("/v1/completions", self.vllm, methods=["POST"]),
            ]
        else:
            routes += [Route("/props", self.props), Route("/completion", self.llamacpp, methods=["POST"])]
        return Starlette(routes=routes, lifespan=self.lifespan)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(self.engine.start)
        try:
            yield
        finally:
            await self.engine.aclose()

    async def events(self, request: EngineRequest) -> AsyncIterator[Event]:
        """The engine's events, paced like a slower server; cancelled when the client goes."""
        self.completions += 1
        if self.options.first_token_delay:
            await asyncio.sleep(self.options.first_token_delay)
        sequence = self.engine.submit(request)
        done = False
        try:
            async for event in sequence:
                if isinstance(event, TokenEvent):
                    if self.options.token_delay:
                        await asyncio.sleep(self.options.token_delay)
                    yield event
                elif isinstance(event, EngineFinished):
                    done = True
                    self.finished += 1
                    yield event
        finally:
            if not done:
                self.cancelled += 1
            sequence.cancel()

    def check(self, prompt: object, max_tokens: object) -> str | None:
        if not isinstance(prompt, list) or not prompt or not all(isinstance(t, int) for t in prompt):
            return "prompt must be a non-empty list of token ids"
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return "max_tokens must be a positive integer"
        limit = self.engine.context_length
        if len(prompt) + max_tokens > limit:
            return (
                f"'max_tokens' is too large: {max_tokens}. This model's maximum context length is "
                f"{limit} tokens and your request has {len(prompt)} input tokens."
            )
        return None

    def eos(self) -> int:
        token = self.engine.tokenizer.token_id("<|im_end|>")
        return token if token is not None else 0

    async def health(self, request: Request) -> Response:
        if self.options.protocol == "llamacpp":
            return _json({"status": "ok"})
        return Response(b"", status_code=200)

    async def stats(self, request: Request) -> Response:
        counts = {"completions": self.completions, "cancelled": self.cancelled, "finished": self.finished}
        return _json(counts)

    # -- vLLM's /v1/completions ------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        card = {"id": self.options.name, "object": "model", "owned_by": "vllm"}
        card["max_model_len"] = self.engine.context_length
        return _json({"object": "list", "data": [card]})

    async def vllm(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        prompt, max_tokens = body.get("prompt"), body.get("max_tokens", 16)
        problem = self.check(prompt, max_tokens)
        if problem is not None:
            return _error(problem)
        top_k = int(body.get("top_k") or -1)
        sampling = SamplingParams(
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            top_k=top_k if top_k > 0 else 0,
            seed=body.get("seed"),
            repetition_penalty=float(body.get("repetition_penalty", 1.0)),
            presence_penalty=float(body.get("presence_penalty", 0.0)),
        )
        completion = _VllmCompletion(
            self, EngineRequest(uuid.uuid4().hex, prompt, sampling, max_tokens), body
        )
        if body.get("stream"):
            return StreamingResponse(completion.stream(), media_type="text/event-stream")
        return _json(await completion.whole())

    # -- llama.cpp server's /completion ----------------------------------------------------------

    async def props(self, request: Request) -> Response:
        settings = {"n_ctx": self.engine.context_length, "params": {"n_predict": -1, "temperature": 0.8}}
        return _json({"default_generation_settings": settings, "total_slots": self.options.n_seq})

    async def llamacpp(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        prompt, max_tokens = body.get("prompt"), body.get("n_predict", 16)
        # llama.cpp server refuses only a prompt that fills the context; generation stops there.
        problem = self.check(prompt, 1 if isinstance(max_tokens, int) and max_tokens > 0 else max_tokens)
        if problem is not None:
            return _error(problem)
        max_tokens = min(max_tokens, self.engine.context_length - len(prompt))
        seed = body.get("seed", -1)
        sampling = SamplingParams(
            temperature=float(body.get("temperature", 0.8)),
            top_p=float(body.get("top_p", 0.95)),
            top_k=int(body.get("top_k", 40)),
            seed=None if seed in (None, -1) else int(seed),
            repetition_penalty=float(body.get("repeat_penalty", 1.0)),
            presence_penalty=float(body.get("presence_penalty", 0.0)),
        )
        engine_request = EngineRequest(uuid.uuid4().hex, prompt, sampling, max_tokens)

        def final(event: EngineFinished, content: str, tokens: list[int]) -> dict[str, Any]:
            n = len(prompt)
            return {
                "index": 0,
                "content": content,
                "tokens": tokens,
                "stop": True,
                "stop_type": "eos" if event.reason == "stop" else "limit",
                "tokens_predicted": event.sampled_tokens,
                "tokens_evaluated": n,
                "tokens_cached": n + event.sampled_tokens,
                "timings": {"cache_n": event.cached_tokens, "prompt_n": n - event.cached_tokens},
            }

        async def stream() -> AsyncIterator[bytes]:
            n = 0
            async for event in self.events(engine_request):
                if isinstance(event, TokenEvent):
                    n += 1
                    # As llama.cpp server does, a token that leaves a UTF-8 character open gets no
                    # event: its bytes come in the next one's content, tokens_predicted counts it.
                    if not event.text and self.engine.tokenizer.token_bytes(event.token):
                        continue
                    data = {"index": 0, "content": event.text, "tokens": [event.token], "stop": False}
                    yield _sse({**data, "tokens_predicted": n})
                else:
                    yield _sse(final(event, "", []))

        if body.get("stream"):
            return StreamingResponse(stream(), media_type="text/event-stream")
        tokens: list[int] = []
        text = ""
        async for event in self.events(engine_request):
            if isinstance(event, TokenEvent):
                tokens.append(event.token)
                text += event.text
            else:
                return _json(final(event, text, tokens if body.get("return_tokens") else []))
        return _error("the engine ended without finishing", 500)


class _VllmCompletion:
    """One ``/v1/completions`` request, streamed or whole, in vLLM's shape."""

    def __init__(self, server: TokenServer, request: EngineRequest, body: dict[str, Any]) -> None:
        self._server = server
        self._request = request
        self._ids = bool(body.get("return_token_ids"))
        self._usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self._base = {
            "id": f"cmpl-{request.request_id}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": server.options.name,
        }
        self._first = True

    def _chunk(self, tokens: list[int], text: str, finish: str | None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        choice["stop_reason"] = None
        if self._ids:
            choice["token_ids"] = tokens
            if self._first:
                choice["prompt_token_ids"] = list(self._request.prompt)
        self._first = False
        return {**self._base, "choices": [choice]}

    def _usage_of(self, event: EngineFinished, completion: int) -> dict[str, Any]:
        n = len(self._request.prompt)
        return {
            "prompt_tokens": n,
            "completion_tokens": completion,
            "total_tokens": n + completion,
            "prompt_tokens_details": {"cached_tokens": event.cached_tokens},
        }

    async def stream(self) -> AsyncIterator[bytes]:
        held: TokenEvent | None = None
        async for event in self._server.events(self._request):
            if isinstance(event, TokenEvent):
                if held is not None:
                    # vLLM puts the finish reason on the chunk of the last token: hold one back.
                    yield _sse(self._chunk([held.token], held.text, None))
                held = event
                continue
            if event.reason == "stop":
                if held is not None:
                    yield _sse(self._chunk([held.token], held.text, None))
                # The end-of-sequence id comes back among the token ids, with no text.
                yield _sse(self._chunk([self._server.eos()], "", "stop"))
            else:
                tokens, text = ([held.token], held.text) if held is not None else ([], "")
                yield _sse(self._chunk(tokens, text, "length"))
            if self._usage:
                completion = event.sampled_tokens + (1 if event.reason == "stop" else 0)
                yield _sse({**self._base, "choices": [], "usage": self._usage_of(event, completion)})
        yield b"data: [DONE]\n\n"

    async def whole(self) -> dict[str, Any]:
        tokens: list[int] = []
        text = ""
        async for event in self._server.events(self._request):
            if isinstance(event, TokenEvent):
                tokens.append(event.token)
                text += event.text
                continue
            if event.reason == "stop":
                tokens.append(self._server.eos())
            out = self._chunk(tokens, text, event.reason)
            return {**out, "usage": self._usage_of(event, len(tokens))}
        raise RuntimeError("the engine ended without finishing")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=("vllm", "llamacpp"), default="vllm")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-seq", type=int, default=4)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--name", default="tiny-qwen3")
    args = parser.parse_args()
    options = Options(
        args.model, args.protocol, args.n_ctx, args.n_seq, args.token_delay, args.first_token_delay, args.name
    )
    logging.basicConfig(level=logging.WARNING)
    app = TokenServer(options).app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
