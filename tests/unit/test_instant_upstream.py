"""The gateway benchmark's instant upstream speaks vLLM's token-level completions as vLLM writes
them (``bench/instant_upstream.py``): the remote engine is benchmarked against it, so its wire must
be the one a real ``vllm serve`` sends."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import httpx
import orjson

from tests.bench_module import load_bench

SCRIPT = [(9707, "Hello"), (0, "!"), (358, " I"), (1079, " am"), (151645, "")]


def _module() -> ModuleType:
    return load_bench("instant_upstream")


def _post(path: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    upstream = _module()
    app = upstream.Upstream(upstream.Script(SCRIPT), "qwen3")

    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://upstream") as client:
            return [await client.post(path, json=body) for body in bodies]

    return asyncio.run(send())


def _events(response: httpx.Response) -> list[Any]:
    lines = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [orjson.loads(line) for line in lines[:-1]]


def test_streamed_token_completion_has_vllms_fields() -> None:
    prompt = list(range(1000, 1040))
    body = {
        "model": "qwen3",
        "prompt": prompt,
        "max_tokens": 100,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_token_ids": True,
    }
    first, second = _post("/v1/completions", [body, body])
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/event-stream")
    *tokens, usage = _events(first)
    assert [e["choices"][0]["token_ids"] for e in tokens] == [[t] for t, _ in SCRIPT]
    assert "".join(e["choices"][0]["text"] for e in tokens) == "Hello! I am"
    assert tokens[0]["choices"][0]["prompt_token_ids"] == prompt
    assert all(e["choices"][0]["prompt_token_ids"] is None for e in tokens[1:])
    assert [e["choices"][0]["finish_reason"] for e in tokens] == [None] * 4 + ["stop"]
    assert set(tokens[0]) == {"id", "object", "created", "model", "choices", "usage"}
    assert tokens[0]["object"] == "text_completion" and tokens[0]["usage"] is None
    assert set(tokens[0]["choices"][0]) == {
        "index",
        "text",
        "logprobs",
        "finish_reason",
        "stop_reason",
        "prompt_token_ids",
        "token_ids",
    }
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 40,
        "total_tokens": 45,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    # The same prompt again: its prefix is cached in whole 16-token blocks, never the last token.
    assert _events(second)[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 32}


def test_max_tokens_cuts_with_length_and_non_streaming_carries_the_ids() -> None:
    (response,) = _post(
        "/v1/completions", [{"prompt": [[7, 8, 9]], "max_tokens": 2, "return_token_ids": True}]
    )
    choice = response.json()["choices"][0]
    assert choice["token_ids"] == [9707, 0]
    assert choice["prompt_token_ids"] == [7, 8, 9]
    assert choice["text"] == "Hello!"
    assert choice["finish_reason"] == "length"
    assert response.json()["usage"]["completion_tokens"] == 2


def test_without_return_token_ids_no_ids_are_sent() -> None:
    (response,) = _post("/v1/completions", [{"prompt": [1, 2], "max_tokens": 9, "stream": True}])
    assert all(e["choices"][0]["token_ids"] is None for e in _events(response))


def test_chat_stream_sends_the_same_text_then_a_finish_chunk() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    (response,) = _post("/v1/chat/completions", [body])
    events = _events(response)
    deltas = [e["choices"][0]["delta"] for e in events]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas) == "Hello! I am"
    assert len(events) == len(SCRIPT)  # 4 text tokens, then the finish chunk
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_text_prompt_is_refused() -> None:
    (response,) = _post("/v1/completions", [{"prompt": "hello", "max_tokens": 4}])
    assert response.status_code == 400
