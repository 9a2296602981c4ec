"""The OpenAI-compatible dialect's side of ``api.dialect``: calls, replies, chunk streams (imports
api, core).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.datastructures import Headers

from thinkserve.api.openai import convert
from thinkserve.core.errors import ThinkserveError
from thinkserve.core.events import AnswerDelta, Collected, Event, ReasoningDelta, Searched, ToolCallDelta
from thinkserve.core.ids import uuid_text
from thinkserve.core.types import ChatRequest, ThinkingDecision


class ChunkStream:
    """``data: {chunk}`` per event, usage last when asked for, then ``data: [DONE]``."""

    def __init__(self, writer: convert.ChunkWriter, *, include_usage: bool, request_id: str) -> None:
        self._writer = writer
        self._include_usage = include_usage
        self._request_id = request_id
        self._searched: Searched | None = None
        self._searches = 0

    def head(self) -> bytes:
        return self._writer.first()

    def frames(self, event: Event) -> tuple[bytes, ...]:
        if isinstance(event, ReasoningDelta):
            return (self._writer.reasoning(event.text),)
        if isinstance(event, AnswerDelta):
            return (self._writer.answer(event.text),)
        if isinstance(event, Searched):
            self._searched = event
            self._searches += 1
            return (self._writer.searched(event),) if event.options.sources else ()
        if isinstance(event, ToolCallDelta):
            return (self._writer.tool_call(event),)
        if self._include_usage:
            usage = self._writer.usage(event.usage, self._searched, self._searches)
            return self._writer.finish(event.reason), usage
        return (self._writer.finish(event.reason),)

    def tail(self) -> bytes:
        return self._writer.done()

    def error_frame(self, error: ThinkserveError) -> bytes:
        return convert.error_frame(error, self._request_id)


class CompletionReply:
    """One ``chat.completion`` (or its chunks), numbered ``chatcmpl-<uuid>``."""

    def __init__(self, chat: ChatRequest, *, thinking: bool, include_usage: bool, request_id: str) -> None:
        self._model = chat.model
        self._thinking = thinking
        self._include_usage = include_usage
        self._request_id = request_id
        self._id = f"chatcmpl-{uuid_text()}"
        self._created = int(time.time())

    def body(self, collected: Collected) -> dict[str, Any]:
        return convert.completion_body(
            self._id, self._model, self._created, collected, thinking=self._thinking
        )

    def stream_writer(self) -> ChunkStream:
        writer = convert.ChunkWriter(self._id, self._model, self._created, thinking=self._thinking)
        return ChunkStream(writer, include_usage=self._include_usage, request_id=self._request_id)


class CompletionCall:
    def __init__(self, chat: ChatRequest, *, include_usage: bool) -> None:
        self._chat = chat
        self._include_usage = include_usage

    @property
    def chat(self) -> ChatRequest:
        return self._chat

    def reply(self, decision: ThinkingDecision, request_id: str) -> CompletionReply:
        return CompletionReply(
            self._chat, thinking=decision.thinking, include_usage=self._include_usage, request_id=request_id
        )


class OpenAIDialect:
    """``POST /compatible-mode/v1/chat/completions``."""

    def parse(self, body: bytes, headers: Headers) -> CompletionCall:
        del headers  # this dialect asks for a stream in the body
        chat, include_usage = convert.parse_request(body)
        return CompletionCall(chat, include_usage=include_usage)

    def error_body(self, error: ThinkserveError, request_id: str) -> dict[str, Any]:
        return convert.error_body(error, request_id)
