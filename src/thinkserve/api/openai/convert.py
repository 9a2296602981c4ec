"""Pure conversions between the OpenAI-compatible wire format and thinkserve's core values.

Streaming chunks are written as bytes from pre-built pieces (no model validation per chunk)::

    data: {"choices":[{"delta":{"content":null,"role":"assistant","reasoning_content":""},"index":0,"logprobs":null,"finish_reason":null}],"object":"chat.completion.chunk","usage":null,"created":1745485391,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-..."}
    data: {"choices":[{"delta":{"content":null,"reasoning_content":"好的"},"index":0,"logprobs":null,"finish_reason":null}],...}
    data: {"choices":[{"delta":{"content":"你好","reasoning_content":null},"index":0,"logprobs":null,"finish_reason":null}],...}
    data: {"choices":[{"finish_reason":"stop","delta":{"content":"","reasoning_content":null},"index":0,"logprobs":null}],...}
    data: {"choices":[],"object":"chat.completion.chunk","usage":{"prompt_tokens":10,...},...}
    data: [DONE]

A tool call streams as Model Studio writes it: the first piece carries ``id`` and the name, later
ones ``id: ""`` and argument text; the finish chunk has an empty delta::

    data: {"choices":[{"delta":{"content":null,"tool_calls":[{"index":0,"id":"call_6596dafa2a6a46f7a217da","type":"function","function":{"name":"get_current_weather","arguments":""}}]},"index":0,"logprobs":null,"finish_reason":null}],...}
    data: {"choices":[{"delta":{"content":null,"tool_calls":[{"index":0,"id":"","type":"function","function":{"arguments":"{\"location\": \"杭州\"}"}}]},...}
    data: {"choices":[{"finish_reason":"tool_calls","delta":{},"index":0,"logprobs":null}],...}
"""

from __future__ import annotations

from typing import Any

import orjson

from thinkserve.api import body, params, tools
from thinkserve.api.errors import TYPE_AND_CODE
from thinkserve.api.openai import schemas
from thinkserve.api.search_options import plugins, search_info, search_options
from thinkserve.core.errors import (
    Arrearage,
    Forbidden,
    InvalidParameter,
    RateLimited,
    ThinkserveError,
)
from thinkserve.core.events import Collected, Searched, ToolCallDelta
from thinkserve.core.types import ChatRequest, Message, ToolCall, Usage


def parse_request(raw: bytes) -> tuple[ChatRequest, bool]:
    """Body bytes -> (request, include_usage); raises ``InvalidParameter`` on any bad input."""
    wire = body.parse_body(raw, schemas.ChatCompletionRequest)
    return to_chat_request(wire), bool(wire.stream_options and wire.stream_options.include_usage)


def _text_of(message: schemas.ChatMessage, index: int) -> str:
    content = message.content
    if content is not None and not isinstance(content, str):
        parts = [(p.type, p.text) for p in content]
        return body.message_text(parts, assistant=message.role == "assistant", index=index)
    return body.message_text(content, assistant=message.role == "assistant", index=index)


def to_chat_request(wire: schemas.ChatCompletionRequest) -> ChatRequest:
    params.refuse_unserved(n=wire.n, logprobs=wire.logprobs)
    messages: list[Message] = []
    for i, m in enumerate(wire.messages):
        text = _text_of(m, i)
        if m.role == "user" and not text.strip():
            raise InvalidParameter(f"messages[{i}].content must not be empty", param="messages")
        messages.append(
            Message(
                role=m.role,
                content=text,
                reasoning=m.reasoning_content,
                tool_calls=tools.parse_calls(m.tool_calls, i),
                tool_call_id=tools.check_tool_turn(m.role, m.tool_call_id, i),
            )
        )
    stop = params.stop_strings((wire.stop,) if isinstance(wire.stop, str) else tuple(wire.stop or ()))
    return ChatRequest(
        model=wire.model,
        messages=tuple(messages),
        stream=bool(wire.stream),
        enable_thinking=wire.enable_thinking,
        thinking_budget=wire.thinking_budget,
        max_tokens=wire.max_tokens if wire.max_tokens is not None else wire.max_completion_tokens,
        sampling=params.sampling_params(
            temperature=wire.temperature,
            top_p=wire.top_p,
            top_k=wire.top_k,
            seed=wire.seed,
            repetition_penalty=wire.repetition_penalty,
            presence_penalty=wire.presence_penalty,
        ),
        stop=stop,
        search=search_options(wire.enable_search, wire.search_options),
        **tools.request_fields(
            tools=wire.tools,
            tool_choice=wire.tool_choice,
            parallel_tool_calls=wire.parallel_tool_calls,
            response_format=wire.response_format,
            options=wire.thinkserve,
        ),
    )


def usage_body(usage: Usage, searched: Searched | None = None, searches: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
    if searched is not None:
        body["plugins"] = plugins(searched.options.strategy, searches)
    return body


class ChunkWriter:
    """Builds the SSE lines of one streamed completion; only the delta text is serialized per chunk."""

    def __init__(self, completion_id: str, model: str, created: int, *, thinking: bool) -> None:
        tail = orjson.dumps(
            {
                "object": "chat.completion.chunk",
                "usage": None,
                "created": created,
                "system_fingerprint": None,
                "model": model,
                "id": completion_id,
            }
        )
        self._tail = b"," + tail[1:] + b"\n\n"
        self._meta = orjson.dumps(
            {"created": created, "system_fingerprint": None, "model": model, "id": completion_id}
        )[1:]
        self._thinking = thinking
        self._reasoning_head = b'data: {"choices":[{"delta":{"content":null,"reasoning_content":'
        self._answer_head = b'data: {"choices":[{"delta":{"content":'
        self._answer_mid = b',"reasoning_content":null}' if thinking else b"}"
        self._choice_tail = b',"index":0,"logprobs":null,"finish_reason":null}]'

    def first(self) -> bytes:
        delta = (
            b'{"content":null,"role":"assistant","reasoning_content":""}'
            if self._thinking
            else (b'{"content":"","role":"assistant"}')
        )
        return b'data: {"choices":[{"delta":' + delta + self._choice_tail + self._tail

    def reasoning(self, text: str) -> bytes:
        return self._reasoning_head + orjson.dumps(text) + b"}" + self._choice_tail + self._tail

    def answer(self, text: str) -> bytes:
        return self._answer_head + orjson.dumps(text) + self._answer_mid + self._choice_tail + self._tail

    def tool_call(self, piece: ToolCallDelta) -> bytes:
        call = tool_call_piece(piece)
        return (
            b'data: {"choices":[{"delta":{"content":null,"tool_calls":['
            + orjson.dumps(call)
            + b"]}"
            + self._choice_tail
            + self._tail
        )

    def finish(self, reason: str) -> bytes:
        if reason == "tool_calls":
            delta = b"{}"
        else:
            delta = b'{"content":"","reasoning_content":null}' if self._thinking else b'{"content":""}'
        return (
            b'data: {"choices":[{"finish_reason":"'
            + reason.encode()
            + b'","delta":'
            + delta
            + b',"index":0,"logprobs":null}]'
            + self._tail
        )

    def searched(self, searched: Searched) -> bytes:
        """An empty delta carrying ``search_info`` (only with ``enable_source``: beyond Model Studio,
        whose OpenAI-compatible mode returns no sources)."""
        delta = b'{"content":null,"reasoning_content":""}' if self._thinking else b'{"content":""}'
        info = orjson.dumps(search_info(searched.results))
        return (
            b'data: {"choices":[{"delta":'
            + delta
            + self._choice_tail
            + b',"search_info":'
            + info
            + self._tail
        )

    def usage(self, usage: Usage, searched: Searched | None = None, searches: int = 1) -> bytes:
        return (
            b'data: {"choices":[],"object":"chat.completion.chunk","usage":'
            + orjson.dumps(usage_body(usage, searched, searches))
            + b","
            + self._meta
            + b"\n\n"
        )

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"


def tool_call_piece(piece: ToolCallDelta) -> dict[str, Any]:
    """One piece of a streamed call: the first with its id and name, later ones ``id: ""``."""
    function: dict[str, Any] = {"arguments": piece.arguments}
    if piece.name is not None:
        function = {"name": piece.name, "arguments": piece.arguments}
    return {"index": piece.index, "id": piece.id or "", "type": "function", "function": function}


def tool_calls_body(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "type": "function",
            "index": i,
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for i, c in enumerate(calls)
    ]


def completion_body(
    completion_id: str, model: str, created: int, collected: Collected, *, thinking: bool
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": collected.answer}
    if thinking:
        message["reasoning_content"] = collected.reasoning
    if collected.tool_calls:
        message["tool_calls"] = tool_calls_body(collected.tool_calls)
    body = {
        "choices": [
            {"message": message, "finish_reason": collected.finished.reason, "index": 0, "logprobs": None}
        ],
        "object": "chat.completion",
        "usage": usage_body(collected.finished.usage, collected.searched, collected.searches),
        "created": created,
        "system_fingerprint": None,
        "model": model,
        "id": completion_id,
    }
    if collected.searched is not None and collected.searched.options.sources:
        body["search_info"] = search_info(collected.searched.results)
    return body


_THROTTLING = {
    "Throttling.RateQuota": "limit_requests",
    "Throttling.BurstRate": "limit_burst_rate",
    "Throttling.AllocationQuota": "insufficient_quota",
}


def error_body(error: ThinkserveError, request_id: str) -> dict[str, Any]:
    """``{"error":{"message","type","param","code"},"request_id"}``."""
    kind, code = TYPE_AND_CODE[error.kind]
    if isinstance(error, RateLimited):
        code = _THROTTLING.get(error.code, code)
    elif isinstance(error, Arrearage | Forbidden):
        # Model Studio answers these with its native code in both dialects.
        kind = code = error.code
    return {
        "error": {"message": error.message, "type": kind, "param": error.param, "code": code},
        "request_id": request_id,
    }


def error_frame(error: ThinkserveError, request_id: str) -> bytes:
    """The same error as an SSE event, once the stream has started."""
    return b"data: " + orjson.dumps(error_body(error, request_id)) + b"\n\n"
