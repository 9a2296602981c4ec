"""Completions reuse their upstream's kept-alive connections (a stream read to its end goes back to
the pool), and a cancelled one closes its connection, which is how the server hears of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import serve, stop
from tests.remote.scripted import ScriptTokenizer, script_vocab, settings
from thinkserve.core.types import SamplingParams
from thinkserve.engine.protocol import EngineFinished, EngineRequest
from thinkserve.engine.remote.engine import RemoteEngine


def upstream_app(ports: list[int], tokenizer: ScriptTokenizer) -> Starlette:
    """A vLLM-protocol server that notes the client port of every completion it serves."""
    reply = tokenizer.encode("Hi there!<|im_end|>")

    async def models(request: Request) -> Response:
        card = {"id": "t", "owned_by": "vllm", "max_model_len": 4096}
        return Response(orjson.dumps({"data": [card]}), media_type="application/json")

    async def completions(request: Request) -> Response:
        assert request.client is not None
        ports.append(request.client.port)
        body = orjson.loads(await request.body())

        async def stream() -> AsyncIterator[bytes]:
            for i, token in enumerate(reply):
                finish = "stop" if i == len(reply) - 1 else None
                choice = {"index": 0, "text": "", "token_ids": [token], "finish_reason": finish}
                yield b"data: " + orjson.dumps({"choices": [choice]}) + b"\n\n"
                if body["max_tokens"] > 1000:
                    await asyncio.sleep(0.05)  # a slow one, to cancel
            usage = {"prompt_tokens": len(body["prompt"]), "prompt_tokens_details": {"cached_tokens": 0}}
            yield b"data: " + orjson.dumps({"choices": [], "usage": usage}) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(
        routes=[Route("/v1/models", models), Route("/v1/completions", completions, methods=["POST"])]
    )


def test_sequential_completions_share_one_connection_and_a_cancel_closes_it() -> None:
    ports: list[int] = []
    vocab = script_vocab()
    assert isinstance(vocab.tokenizer, ScriptTokenizer)
    live, running = serve(upstream_app(ports, vocab.tokenizer))
    try:

        async def body() -> None:
            engine = RemoteEngine(settings(live.base_url, health_interval=3600.0), vocab)
            await engine.start()
            try:
                prompt = vocab.tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
                for _ in range(10):
                    events = [
                        e async for e in engine.submit(EngineRequest("r", prompt, SamplingParams(), 50))
                    ]
                    assert isinstance(events[-1], EngineFinished) and events[-1].reason == "stop"
                assert len(set(ports)) == 1, ports
                slow = engine.submit(EngineRequest("r", prompt, SamplingParams(), 2000))
                async for _ in slow:
                    slow.cancel()
                await asyncio.sleep(0.1)
                events = [e async for e in engine.submit(EngineRequest("r", prompt, SamplingParams(), 50))]
                assert isinstance(events[-1], EngineFinished)
                assert ports[-1] != ports[0]  # the cancelled stream's connection was closed
                counters = engine.pool.upstreams[0].counters
                assert counters.requests == {"ok": 11, "cancelled": 1}
            finally:
                await engine.aclose()

        asyncio.run(asyncio.wait_for(body(), 30))
    finally:
        stop(running)
