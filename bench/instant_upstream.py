"""An instant upstream for gateway benchmarks: it answers at once, in two protocols (needs only
uvicorn with uvloop and httptools, and orjson; it imports nothing of thinkserve).

* ``POST /v1/chat/completions``: OpenAI chat, what LiteLLM's proxy forwards to. Non-streaming: one
  ``chat.completion`` whose content is the script's text. Streaming: one chunk per script token
  (the first also carries ``"role":"assistant"``), a chunk with ``finish_reason``, a usage chunk when
  ``stream_options.include_usage`` is set, then ``data: [DONE]``.
* ``POST /v1/completions``: vLLM's token-level completions, what thinkserve's remote engine speaks.
  The prompt is a list of token ids (or a list of one such list); ``return_token_ids: true`` adds
  ``prompt_token_ids`` and ``token_ids`` to the choices as vLLM does. Streaming: one event per
  token; the first choice carries ``prompt_token_ids``, the last one ``finish_reason``; with
  ``stream_options.include_usage`` a usage event with no choices follows, with
  ``prompt_tokens_details.cached_tokens`` (vLLM adds it when started with
  ``--enable-prompt-tokens-details``: the prompt tokens its prefix cache held, whole 16-token
  blocks, never the last prompt token). One streamed event, wrapped here::

      data: {"id":"cmpl-…","object":"text_completion","created":1764170000,"model":"m",
      "choices":[{"index":0,"text":"Hello","logprobs":null,"finish_reason":null,"stop_reason":null,
      "prompt_token_ids":null,"token_ids":[9707]}],"usage":null}

  ``max_tokens`` cuts the script (``finish_reason: "length"``); the script's last token is the
  end-of-generation token (its text is empty, as vLLM skips special tokens), so a whole answer
  ends with ``"stop"``.
* ``GET /v1/models`` (with ``max_model_len``), ``GET /health`` (vLLM's readiness probe), ``GET /version``.

The script is a JSON file ``{"tokens": [[id, "text"], ...]}``: the tokens of the reply in the
gateway's tokenizer, so that the gateway detokenizes real ids.

    python bench/instant_upstream.py --port 9100 --script reply.json

Bare ASGI, no framework, access log off: the upstream shares the harness core with the load
generator and should take as little of it as it can.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
BLOCK = 16
"""vLLM's default KV block size: its prefix cache holds whole blocks."""
MAX_MODEL_LEN = 32768
"""The context ``/v1/models`` reports, as vLLM does (``max_model_len``)."""
RECENT = 8
"""Prompts remembered for the prefix-cache count (like a small cache: a few conversations)."""


class Script:
    """The reply, pre-encoded for both protocols."""

    def __init__(self, tokens: list[tuple[int, str]]) -> None:
        if not tokens:
            raise ValueError("the script needs at least one token")
        self.tokens = tokens
        self.ids = [t for t, _ in tokens]
        self.texts = [orjson.dumps(s) for _, s in tokens]
        self.text = "".join(s for _, s in tokens)


class Upstream:
    def __init__(self, script: Script, model: str) -> None:
        self.script = script
        self.model = model
        self.recent: list[list[int]] = []
        self.models = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {
                        "id": model,
                        "object": "model",
                        "created": 0,
                        "owned_by": "vllm",
                        "root": model,
                        "parent": None,
                        "max_model_len": MAX_MODEL_LEN,
                    }
                ],
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and path in ("/v1/models", "/models"):
            return await _reply(send, 200, self.models)
        if method == "GET" and path == "/health":
            return await _reply(send, 200, b"")
        if method == "GET" and path == "/version":
            return await _reply(send, 200, b'{"version":"instant"}')
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
            return await _reply(send, 404, _error("not found"))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            request = orjson.loads(body)
            assert isinstance(request, dict)
        except (orjson.JSONDecodeError, AssertionError):
            return await _reply(send, 400, _error("the body is not a JSON object"))
        if path == "/v1/chat/completions":
            return await self._chat(request, send)
        return await self._completions(request, send)

    async def _chat(self, request: dict[str, Any], send: Send) -> None:
        created = int(time.time())
        model = request.get("model") or self.model
        texts = self.script.texts[:-1]  # the end-of-generation token has no text
        usage = {"prompt_tokens": 9, "completion_tokens": len(texts), "total_tokens": 9 + len(texts)}
        if not request.get("stream"):
            return await _reply(
                send,
                200,
                orjson.dumps(
                    {
                        "id": "chatcmpl-instant",
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": self.script.text},
                                "logprobs": None,
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    }
                ),
            )
        head = b'data: {"id":"chatcmpl-instant","object":"chat.completion.chunk","created":%d,"model":%s,' % (
            created,
            orjson.dumps(model),
        )
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        role = b'"role":"assistant",'
        for i, text in enumerate(texts):
            chunk = (
                head
                + b'"choices":[{"index":0,"delta":{'
                + (role if i == 0 else b"")
                + b'"content":'
                + text
                + b'},"logprobs":null,"finish_reason":null}]}\n\n'
            )
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        last = head + b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
        await send({"type": "http.response.body", "body": last, "more_body": True})
        if (request.get("stream_options") or {}).get("include_usage"):
            tail = head + b'"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"
            await send({"type": "http.response.body", "body": tail, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def _completions(self, request: dict[str, Any], send: Send) -> None:
        prompt = request.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], list):
            prompt = prompt[0]
        if not isinstance(prompt, list) or not prompt or not all(isinstance(t, int) for t in prompt):
            return await _reply(send, 400, _error("this upstream takes a prompt of token ids"))
        limit = request.get("max_tokens")
        limit = 16 if limit is None else int(limit)  # vLLM's default for completions
        ids, texts = self.script.ids[:limit], self.script.texts[:limit]
        finish = b'"length"' if len(ids) < len(self.script.ids) else b'"stop"'
        cached = self._cached(prompt)
        with_ids = bool(request.get("return_token_ids"))
        created = int(time.time())
        model = request.get("model") or self.model
        usage: dict[str, Any] = {
            "prompt_tokens": len(prompt),
            "total_tokens": len(prompt) + len(ids),
            "completion_tokens": len(ids),
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        if not request.get("stream"):
            choice: dict[str, Any] = {
                "index": 0,
                "text": "".join(s for _, s in self.script.tokens[:limit]),
                "logprobs": None,
                "finish_reason": finish.decode().strip('"'),
                "stop_reason": None,
                "token_ids": ids if with_ids else None,
                "prompt_logprobs": None,
                "prompt_token_ids": prompt if with_ids else None,
            }
            response = {
                "id": "cmpl-instant",
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "service_tier": None,
                "system_fingerprint": None,
                "usage": usage,
                "kv_transfer_params": None,
            }
            return await _reply(send, 200, orjson.dumps(response))
        head = b'data: {"id":"cmpl-instant","object":"text_completion","created":%d,"model":%s,' % (
            created,
            orjson.dumps(model),
        )
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        prompt_ids = orjson.dumps(prompt) if with_ids else b"null"
        for i, (token, text) in enumerate(zip(ids, texts, strict=True)):
            chunk = (
                head
                + b'"choices":[{"index":0,"text":'
                + text
                + b',"logprobs":null,"finish_reason":'
                + (finish if i == len(ids) - 1 else b"null")
                + b',"stop_reason":null,"prompt_token_ids":'
                + (prompt_ids if i == 0 else b"null")
                + b',"token_ids":'
                + (b"[%d]" % token if with_ids else b"null")
                + b'}],"usage":null}\n\n'
            )
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if (request.get("stream_options") or {}).get("include_usage"):
            tail = head + b'"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"
            await send({"type": "http.response.body", "body": tail, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    def _cached(self, prompt: list[int]) -> int:
        """Prompt tokens a prefix cache would hold: the longest prefix shared with a recent prompt,
        in whole blocks, never the last token (one token is always evaluated)."""
        best = 0
        for old in self.recent:
            n = 0
            for a, b in zip(prompt, old, strict=False):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        if prompt not in self.recent:
            self.recent.append(prompt)
            del self.recent[:-RECENT]
        return min(best, len(prompt) - 1) // BLOCK * BLOCK


async def _reply(send: Send, status: int, body: bytes) -> None:
    headers = [*JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(message: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--script", type=Path, required=True, help='JSON: {"tokens": [[id, "text"], ...]}')
    parser.add_argument("--model", default="instant")
    args = parser.parse_args()
    tokens = [(int(t), str(s)) for t, s in orjson.loads(args.script.read_bytes())["tokens"]]
    import uvicorn

    uvicorn.run(
        Upstream(Script(tokens), args.model),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
