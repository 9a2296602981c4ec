"""Model Studio's native API (DashScope), streamed, as chat events.

``base`` is what the DashScope SDK takes as ``base_http_api_url``, e.g. ``http://127.0.0.1:8000/api/v1``;
the call is ``POST {base}/services/aigc/text-generation/generation`` with ``X-DashScope-SSE: enable``
and a body like::

    {"model": "qwen-plus", "input": {"messages": [{"role": "user", "content": "hi"}]},
     "parameters": {"result_format": "message", "incremental_output": true, "enable_thinking": true}}

Each block of the stream is::

    id:1
    event:result
    :HTTP_STATUS/200
    data:{"output":{"choices":[{"message":{"content":"","reasoning_content":"好的","role":"assistant"},
          "finish_reason":"null"}]},"usage":{"input_tokens":11,"output_tokens":3,"total_tokens":14,
          "output_tokens_details":{"reasoning_tokens":1},"prompt_tokens_details":{"cached_tokens":0}},
          "request_id":"2ce91085-..."}

with cumulative usage and ``finish_reason`` the string ``"null"`` until the last block. An error is
``{"code", "message", "request_id"}``: the body of a 4xx/5xx, or the data of an ``event:error`` block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from thinkserve.chat.events import Answer, Call, ChatError, Event, Finished, Reasoning, Tokens
from thinkserve.chat.sse import events, json_object

PATH = "/services/aigc/text-generation/generation"


def native_base(base_url: str) -> str:
    """The native base for a URL given as the OpenAI SDK's: ``…/compatible-mode/v1`` -> ``…/api/v1``."""
    base = base_url.rstrip("/")
    for suffix in ("/compatible-mode/v1", "/v1"):
        if base.endswith(suffix) and not base.endswith("/api/v1"):
            return base.removesuffix(suffix) + "/api/v1"
    return base


class DashScopeWire:
    """Streams calls to a native (DashScope) endpoint."""

    def __init__(self, client: httpx.Client, base_url: str, api_key: str | None) -> None:
        self._client = client
        self.url = native_base(base_url) + PATH
        self._headers = {"X-DashScope-SSE": "enable", "Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def body(self, call: Call) -> dict[str, Any]:
        parameters: dict[str, Any] = {"result_format": "message", "incremental_output": True}
        if call.enable_thinking is not None:
            parameters["enable_thinking"] = call.enable_thinking
        if call.thinking_budget is not None:
            parameters["thinking_budget"] = call.thinking_budget
        return {"model": call.model, "input": {"messages": list(call.messages)}, "parameters": parameters}

    def stream(self, call: Call) -> Iterator[Event]:
        with self._client.stream("POST", self.url, json=self.body(call), headers=self._headers) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(json_object(response.text), response.status_code, response.text)
            tokens: Tokens | None = None
            finish: str | None = None
            request_id: str | None = None
            for name, data in events(response):
                block = json_object(data)
                if name == "error" or ("code" in block and "output" not in block):
                    raise _error(block, None, data)
                request_id = block.get("request_id", request_id)
                if usage := block.get("usage"):
                    tokens = _tokens(usage)
                output = block.get("output") or {}
                for choice in output.get("choices") or ():
                    message = choice.get("message") or {}
                    if text := message.get("reasoning_content"):
                        yield Reasoning(text)
                    if text := message.get("content"):
                        yield Answer(text)
                    if choice.get("finish_reason") not in (None, "null"):
                        finish = choice["finish_reason"]
            yield Finished(tokens, finish, request_id)


def _error(body: dict[str, Any], status: int | None, raw: str) -> ChatError:
    if "message" in body:
        return ChatError(str(body["message"]), code=body.get("code"), status=status)
    return ChatError(raw.strip()[:500] or "no body", status=status)


def _tokens(usage: dict[str, Any]) -> Tokens:
    prompt_details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return Tokens(
        prompt=int(usage.get("input_tokens") or 0),
        cached=int(prompt_details.get("cached_tokens") or 0),
        output=int(usage.get("output_tokens") or 0),
        reasoning=int(output_details.get("reasoning_tokens") or 0),
    )
