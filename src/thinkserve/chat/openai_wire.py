"""The OpenAI-compatible chat API (``POST {base}/chat/completions``, streamed) as chat events.

``base`` is what the OpenAI SDK takes as ``base_url``, e.g. ``http://127.0.0.1:8000/compatible-mode/v1``.
Each chunk looks like::

    data: {"choices":[{"delta":{"reasoning_content":"Let me add","content":null},"finish_reason":null}],...}

and with ``stream_options.include_usage`` the last one before ``data: [DONE]`` carries no choice, only::

    data: {"choices":[],"usage":{"prompt_tokens":18,"completion_tokens":40,"total_tokens":58,
           "completion_tokens_details":{"reasoning_tokens":31},"prompt_tokens_details":{"cached_tokens":0}}}

An error before the stream is the HTTP status with ``{"error": {"message", "type", "code"}}``; after
it, a ``data: {"error": {...}}`` chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from thinkserve.chat.events import Answer, Call, ChatError, Event, Finished, Reasoning, Tokens
from thinkserve.chat.sse import events, json_object


class OpenAIWire:
    """Streams calls to an OpenAI-compatible endpoint."""

    def __init__(self, client: httpx.Client, base_url: str, api_key: str | None) -> None:
        self._client = client
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def body(self, call: Call) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": call.model,
            "messages": list(call.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # Top-level keys, where the SDK's extra_body puts them.
        if call.enable_thinking is not None:
            body["enable_thinking"] = call.enable_thinking
        if call.thinking_budget is not None:
            body["thinking_budget"] = call.thinking_budget
        return body

    def stream(self, call: Call) -> Iterator[Event]:
        with self._client.stream("POST", self.url, json=self.body(call), headers=self._headers) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(json_object(response.text), response.status_code, response.text)
            tokens: Tokens | None = None
            finish: str | None = None
            request_id: str | None = None
            for _, data in events(response):
                if data.strip() == "[DONE]":
                    break
                chunk = json_object(data)
                if "error" in chunk:
                    raise _error(chunk, None, data)
                request_id = chunk.get("id", request_id)
                if usage := chunk.get("usage"):
                    tokens = _tokens(usage)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if text := delta.get("reasoning_content"):
                        yield Reasoning(text)
                    if text := delta.get("content"):
                        yield Answer(text)
                    finish = choice.get("finish_reason") or finish
            yield Finished(tokens, finish, request_id)


def _error(body: dict[str, Any], status: int | None, raw: str) -> ChatError:
    error = body.get("error")
    if isinstance(error, dict):
        return ChatError(str(error.get("message", raw)), code=error.get("code"), status=status)
    return ChatError(raw.strip()[:500] or "no body", status=status)


def _tokens(usage: dict[str, Any]) -> Tokens:
    prompt_details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or {}
    return Tokens(
        prompt=int(usage.get("prompt_tokens") or 0),
        cached=int(prompt_details.get("cached_tokens") or 0),
        output=int(usage.get("completion_tokens") or 0),
        reasoning=int(output_details.get("reasoning_tokens") or 0),
    )
