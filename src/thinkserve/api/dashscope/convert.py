"""Pure conversions between Model Studio's native (DashScope) wire format and thinkserve's core values.

A streamed response is one SSE block per event, no space after the colons, ids from 1::

    id:1
    event:result
    :HTTP_STATUS/200
    data:{"output":{"choices":[{"message":{"content":"","reasoning_content":"好的","role":"assistant"},"finish_reason":"null"}]},"usage":{"total_tokens":14,"input_tokens":11,"output_tokens":3,"output_tokens_details":{"reasoning_tokens":1},"prompt_tokens_details":{"cached_tokens":0}},"request_id":"2ce91085-..."}

    ...
    id:134
    event:result
    :HTTP_STATUS/200
    data:{"output":{"choices":[{"message":{"content":"","reasoning_content":"","role":"assistant"},"finish_reason":"stop"}]},"usage":{...},"request_id":"2ce91085-..."}

``finish_reason`` is the *string* ``"null"`` until the last block; ``content`` and ``reasoning_content``
are always strings (the SDK reads both as dict attributes on every chunk); usage is cumulative.
With ``result_format: text`` the output is ``{"text":"...","finish_reason":"null"}`` instead.
A tool call adds ``tool_calls`` to the message: with ``incremental_output`` its pieces (the first
with ``id`` and name, later ones ``id: ""`` and argument text), otherwise every call so far, whole::

    data:{"output":{"choices":[{"message":{"content":"","reasoning_content":"","role":"assistant","tool_calls":[{"index":0,"id":"call_ecc4...","type":"function","function":{"name":"get_current_weather","arguments":""}}]},"finish_reason":"null"}]},...}
    data:{"output":{"choices":[{"message":{"content":"","reasoning_content":"","role":"assistant","tool_calls":[{"index":0,"id":"","type":"function","function":{"arguments":"{\"location\": \"杭州\"}"}}]},"finish_reason":"null"}]},...}

An error after the first block ends the stream with the same framing::

    id:7
    event:error
    :HTTP_STATUS/500
    data:{"code":"InternalError","message":"...","request_id":"2ce91085-..."}

Blocks are written from pre-built byte pieces: per chunk only the text is serialized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from thinkserve.api import body, params, tools
from thinkserve.api.dashscope import schemas
from thinkserve.api.search_options import plugins, search_info, search_options
from thinkserve.core.errors import ErrorKind, InvalidParameter, ThinkserveError
from thinkserve.core.events import Collected, Searched, ToolCallDelta
from thinkserve.core.types import ChatRequest, Message, ThinkingDecision, ToolCall, Usage

INCREMENTAL_WITH_THINKING = 'The incremental_output parameter must be "true" when enable_thinking is true'


class _Coded(InvalidParameter):
    """A 400 whose native code is more specific than ``InvalidParameter``."""

    code = "InvalidParameter"


class EmptyModel(_Coded):
    code = "BadRequest.EmptyModel"

    def __init__(self) -> None:
        super().__init__('Required parameter "model" missing from request.', param="model")


class EmptyInput(_Coded):
    code = "BadRequest.EmptyInput"

    def __init__(self) -> None:
        super().__init__("Required input parameter missing from request.", param="input")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A request in core terms, plus the two output choices only this dialect has."""

    chat: ChatRequest
    result_format: str | None
    incremental_output: bool | None


@dataclass(frozen=True, slots=True)
class Shape:
    """How the response is written: ``message`` (choices) or ``text``; deltas or whole text so far."""

    message: bool
    incremental: bool


def parse_request(raw: bytes, *, sse: bool) -> Parsed:
    """Body bytes -> ``Parsed``; ``sse``: the headers asked for a stream. Raises ``InvalidParameter``."""
    wire = body.parse_body(raw, schemas.GenerationRequest)
    return to_parsed(wire, sse=sse)


def _text_of(message: schemas.Message, index: int) -> str:
    content = message.content
    if content is not None and not isinstance(content, str):
        # DashScope names a part by its key ({"image": url}), OpenAI by "type".
        parts = [
            (p.type or ("text" if p.text is not None else next(iter(p.model_extra or {}), "empty")), p.text)
            for p in content
        ]
        return body.message_text(parts, assistant=message.role == "assistant", index=index)
    return body.message_text(content, assistant=message.role == "assistant", index=index)


def _messages(wire: schemas.Input) -> tuple[Message, ...]:
    if wire.history is not None:
        raise params.unsupported("history")
    messages: list[Message] = []
    for i, m in enumerate(wire.messages or ()):
        if m.partial:
            raise params.unsupported("partial")
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
    # Like the SDK: a prompt next to messages is one more user turn.
    if wire.prompt:
        messages.append(Message(role="user", content=wire.prompt))
    if not messages:
        raise EmptyInput()
    return tuple(messages)


def _stop(stop: str | list[str] | list[int] | list[list[int]] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    strings = tuple(s for s in stop if isinstance(s, str))
    if len(strings) != len(stop):
        raise InvalidParameter(
            "Token ids in stop are not supported by thinkserve yet: use strings.", param="stop"
        )
    return strings


def _refuse_unserved(p: schemas.Parameters) -> None:
    """Real parameters thinkserve does not serve: a clear 400, never silently ignored."""
    params.refuse_unserved(n=p.n, logprobs=p.logprobs)
    if p.translation_options is not None:
        raise params.unsupported("translation_options")
    if p.result_format is not None and p.result_format not in ("text", "message"):
        raise InvalidParameter(
            'The result_format parameter must be "text" or "message"', param="result_format"
        )


def to_parsed(wire: schemas.GenerationRequest, *, sse: bool) -> Parsed:
    if not wire.model:
        raise EmptyModel()
    if wire.input is None:
        raise EmptyInput()
    p = wire.parameters or schemas.Parameters()
    _refuse_unserved(p)
    chat = ChatRequest(
        model=wire.model,
        messages=_messages(wire.input),
        # The SDK asks for a stream only by header; raw HTTP may say parameters.stream.
        stream=sse or bool(p.stream),
        enable_thinking=p.enable_thinking,
        thinking_budget=p.thinking_budget,
        max_tokens=p.max_tokens,
        sampling=params.sampling_params(
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k,
            seed=p.seed,
            repetition_penalty=p.repetition_penalty,
            presence_penalty=p.presence_penalty,
        ),
        stop=params.stop_strings(_stop(p.stop)),
        search=search_options(p.enable_search, p.search_options),
        **tools.request_fields(
            tools=p.tools,
            tool_choice=p.tool_choice,
            parallel_tool_calls=p.parallel_tool_calls,
            response_format=p.response_format,
            options=p.thinkserve,
        ),
    )
    if chat.tools and p.result_format == "text":
        raise InvalidParameter(
            'tools require the result_format parameter to be "message"', param="result_format"
        )
    return Parsed(chat, p.result_format, p.incremental_output)


def shape(parsed: Parsed, decision: ThinkingDecision) -> Shape:
    """The output shape, once the service has decided whether the request thinks.

    Model Studio: ``result_format`` defaults to ``text``, but to ``message`` for the models that think by
    default (QwQ, open-source Qwen3, thinking-only), and thinking mode answers only as ``message`` (the
    ``text`` shape has no place for the reasoning). ``incremental_output`` defaults to false, but thinking
    mode supports only true: true is its default there and an explicit false is refused. Tools need
    ``message`` (their calls have no place in ``text``): it is their default.
    """
    by_default = decision.thinks_by_default
    fmt = parsed.result_format or ("message" if by_default or parsed.chat.tools else "text")
    incremental = parsed.incremental_output
    if incremental is None:
        incremental = decision.thinking or by_default
    chat = parsed.chat
    if chat.stream and not incremental and (decision.thinking or chat.enable_thinking):
        raise InvalidParameter(INCREMENTAL_WITH_THINKING, param="incremental_output")
    return Shape(message=decision.thinking or fmt == "message", incremental=incremental)


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "total_tokens": usage.total_tokens,
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


# The same keys as usage_body, in the same order, as a bytes template (no dict per chunk).
_USAGE = (
    b'{"total_tokens":%d,"input_tokens":%d,"output_tokens":%d,'
    b'"output_tokens_details":{"reasoning_tokens":%d},"prompt_tokens_details":{"cached_tokens":%d}}'
)
_BLOCK = b'id:%d\nevent:result\n:HTTP_STATUS/200\ndata:{"output":%b,"usage":%b,"request_id":%b}\n\n'
_MESSAGE = (
    b'{"choices":[{"message":{"content":%b,"reasoning_content":%b,"role":"assistant"},"finish_reason":"%b"}]}'
)
_TOOL_MESSAGE = (
    b'{"choices":[{"message":{"content":%b,"reasoning_content":%b,"role":"assistant","tool_calls":%b},'
    b'"finish_reason":"%b"}]}'
)
_TEXT = b'{"text":%b,"finish_reason":"%b"}'
_EMPTY = b'""'
_NULL = b"null"


def _usage_bytes(u: Usage) -> bytes:
    return _USAGE % (
        u.total_tokens,
        u.prompt_tokens,
        u.completion_tokens,
        u.reasoning_tokens,
        u.cached_tokens,
    )


class BlockWriter:
    """Builds the SSE blocks of one streamed generation and numbers them (errors included)."""

    def __init__(self, request_id: str, shape: Shape) -> None:
        self._request_id = request_id
        self._rid = orjson.dumps(request_id)
        self._message = shape.message
        self._incremental = shape.incremental
        self._n = 0
        # Whole text so far, for incremental_output false.
        self._reasoning = ""
        self._answer = ""
        # After a search: what every block adds to its output and to its usage.
        self._search_info = b""
        self._plugins = b""
        self._searches = 0
        self._calls: list[dict[str, Any]] = []

    def _block(
        self, content: bytes, reasoning: bytes, reason: bytes, usage: Usage, calls: bytes | None = None
    ) -> bytes:
        self._n += 1
        if calls is not None:
            output = _TOOL_MESSAGE % (content, reasoning, calls, reason)
        elif self._message:
            output = _MESSAGE % (content, reasoning, reason)
        else:
            output = _TEXT % (content, reason)
        used = _usage_bytes(usage)
        if self._plugins:
            output = (
                b'{"search_info":' + self._search_info + b"," + output[1:] if self._search_info else output
            )
            used = used[:-1] + b',"plugins":' + self._plugins + b"}"
        return _BLOCK % (self._n, output, used, self._rid)

    def searched(self, searched: Searched) -> None:
        """From now on every block carries ``usage.plugins`` and, with ``enable_source``,
        ``output.search_info``."""
        self._searches += 1
        self._plugins = orjson.dumps(plugins(searched.options.strategy, self._searches))
        if searched.options.sources:
            self._search_info = orjson.dumps(search_info(searched.results))

    def sources(self, usage: Usage) -> bytes:
        """``prepend_search_result``: a block with the sources alone (empty text), before the answer."""
        return self._block(_EMPTY, _EMPTY, _NULL, usage)

    def tool_call(self, piece: ToolCallDelta) -> bytes:
        """A block with a piece of a call (incremental) or every call so far (cumulative)."""
        if piece.name is not None:
            self._calls.append(
                {
                    "index": piece.index,
                    "id": piece.id or "",
                    "type": "function",
                    "function": {"name": piece.name, "arguments": ""},
                }
            )
        self._calls[piece.index]["function"]["arguments"] += piece.arguments
        if self._incremental:
            function: dict[str, Any] = {"arguments": piece.arguments}
            if piece.name is not None:
                function = {"name": piece.name, "arguments": piece.arguments}
            fragment = {"index": piece.index, "id": piece.id or "", "type": "function", "function": function}
            return self._block(_EMPTY, _EMPTY, _NULL, piece.usage, orjson.dumps([fragment]))
        whole = orjson.dumps(self._calls)
        return self._block(
            orjson.dumps(self._answer), orjson.dumps(self._reasoning), _NULL, piece.usage, whole
        )

    def reasoning(self, text: str, usage: Usage) -> bytes:
        """A reasoning block; nothing in the ``text`` shape (used only when not thinking)."""
        if not self._message:
            return b""
        if self._incremental:
            return self._block(_EMPTY, orjson.dumps(text), _NULL, usage)
        self._reasoning += text
        return self._block(orjson.dumps(self._answer), orjson.dumps(self._reasoning), _NULL, usage)

    def answer(self, text: str, usage: Usage) -> bytes:
        if self._incremental:
            return self._block(orjson.dumps(text), _EMPTY, _NULL, usage)
        self._answer += text
        return self._block(orjson.dumps(self._answer), orjson.dumps(self._reasoning), _NULL, usage)

    def finish(self, reason: str, usage: Usage) -> bytes:
        """The last block: empty deltas (incremental) or the whole text, with the real reason."""
        if self._incremental:
            return self._block(_EMPTY, _EMPTY, reason.encode(), usage)
        calls = orjson.dumps(self._calls) if self._calls else None
        return self._block(
            orjson.dumps(self._answer), orjson.dumps(self._reasoning), reason.encode(), usage, calls
        )

    def error(self, error: ThinkserveError, status: int) -> bytes:
        self._n += 1
        data = orjson.dumps(error_body(error, self._request_id))
        return b"id:%d\nevent:error\n:HTTP_STATUS/%d\ndata:%b\n\n" % (self._n, status, data)


def generation_body(request_id: str, collected: Collected, shape: Shape) -> dict[str, Any]:
    """``{"output":{"choices":[{"finish_reason","message":{...}}]},"usage","request_id"}`` or, for
    ``text``, ``{"output":{"text","finish_reason"},...}``."""
    reason = collected.finished.reason
    output: dict[str, Any]
    if shape.message:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": collected.answer,
            "reasoning_content": collected.reasoning,
        }
        if collected.tool_calls:
            message["tool_calls"] = _calls_body(collected.tool_calls)
        output = {"choices": [{"finish_reason": reason, "message": message}]}
    else:
        output = {"text": collected.answer, "finish_reason": reason}
    usage = usage_body(collected.finished.usage)
    searched = collected.searched
    if searched is not None:
        usage["plugins"] = plugins(searched.options.strategy, collected.searches)
        if searched.options.sources:
            output["search_info"] = search_info(searched.results)
    return {"output": output, "usage": usage, "request_id": request_id}


def _calls_body(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [
        {"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for i, c in enumerate(calls)
    ]


_CODES = {
    ErrorKind.INVALID_PARAMETER: "InvalidParameter",
    ErrorKind.INVALID_API_KEY: "InvalidApiKey",
    ErrorKind.FORBIDDEN: "AccessDenied",
    ErrorKind.MODEL_NOT_FOUND: "ModelNotFound",
    ErrorKind.NOT_FOUND: "InvalidURL",
    ErrorKind.METHOD_NOT_ALLOWED: "MethodNotAllowed",
    ErrorKind.TOO_LARGE: "InvalidParameter",
    ErrorKind.RATE_LIMITED: "Throttling",
    ErrorKind.OVERLOADED: "ModelUnavailable",
    ErrorKind.INTERNAL: "InternalError",
}


def error_body(error: ThinkserveError, request_id: str) -> dict[str, Any]:
    """``{"code":"InvalidParameter","message":"...","request_id":"..."}``.

    Errors that carry Model Studio's native code (``RateLimited``, ``Forbidden``, ``Arrearage``...) use it.
    """
    native = getattr(error, "code", None)
    code = native if isinstance(native, str) else _CODES.get(error.kind, "InternalError")
    return {"code": code, "message": error.message, "request_id": request_id}
