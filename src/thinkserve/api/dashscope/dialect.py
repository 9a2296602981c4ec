"""The native (DashScope) dialect's side of ``api.dialect``: calls, replies, block streams (imports
api, core).

A stream is asked for by the header ``X-DashScope-SSE: enable`` (or ``Accept: text/event-stream``,
or ``parameters.stream``).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers

from thinkserve.api.dashscope import convert
from thinkserve.api.errors import status_of
from thinkserve.core.errors import ThinkserveError
from thinkserve.core.events import AnswerDelta, Collected, Event, ReasoningDelta, Searched, ToolCallDelta
from thinkserve.core.types import ChatRequest, ThinkingDecision


def wants_sse(headers: Headers) -> bool:
    sse = headers.get("x-dashscope-sse", "").strip().lower() == "enable"
    return sse or "text/event-stream" in headers.get("accept", "")


class BlockStream:
    """One numbered ``id:N`` / ``event:result`` block per event; nothing before or after."""

    def __init__(self, writer: convert.BlockWriter) -> None:
        self._writer = writer
        self._prepend = False

    def head(self) -> bytes:
        return b""

    def frames(self, event: Event) -> tuple[bytes, ...]:
        if isinstance(event, Searched):
            self._writer.searched(event)
            # The sources block goes out with the next event: it carries that event's usage.
            self._prepend = event.options.prepend
            return ()
        if isinstance(event, ReasoningDelta):
            block = self._writer.reasoning(event.text, event.usage)
        elif isinstance(event, AnswerDelta):
            block = self._writer.answer(event.text, event.usage)
        elif isinstance(event, ToolCallDelta):
            block = self._writer.tool_call(event)
        else:
            block = self._writer.finish(event.reason, event.usage)
        if self._prepend:
            self._prepend = False
            sources = self._writer.sources(event.usage)
            return (sources, block) if block else (sources,)
        # The text shape writes no reasoning block: skip the empty bytes.
        return (block,) if block else ()

    def tail(self) -> bytes:
        return b""

    def error_frame(self, error: ThinkserveError) -> bytes:
        return self._writer.error(error, status_of(error))


class GenerationReply:
    def __init__(self, request_id: str, shape: convert.Shape) -> None:
        self._request_id = request_id
        self._shape = shape

    def body(self, collected: Collected) -> dict[str, Any]:
        return convert.generation_body(self._request_id, collected, self._shape)

    def stream_writer(self) -> BlockStream:
        return BlockStream(convert.BlockWriter(self._request_id, self._shape))


class GenerationCall:
    def __init__(self, parsed: convert.Parsed) -> None:
        self._parsed = parsed

    @property
    def chat(self) -> ChatRequest:
        return self._parsed.chat

    def reply(self, decision: ThinkingDecision, request_id: str) -> GenerationReply:
        return GenerationReply(request_id, convert.shape(self._parsed, decision))


class DashScopeDialect:
    """``POST /api/v1/services/aigc/text-generation/generation``."""

    def parse(self, body: bytes, headers: Headers) -> GenerationCall:
        return GenerationCall(convert.parse_request(body, sse=wants_sse(headers)))

    def error_body(self, error: ThinkserveError, request_id: str) -> dict[str, Any]:
        return convert.error_body(error, request_id)
