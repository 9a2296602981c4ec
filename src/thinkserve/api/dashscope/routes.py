"""Native (DashScope) routes: auth -> convert -> service -> blocks (imports api, service, platform).

``POST /api/v1/services/aigc/text-generation/generation``, where the ``dashscope`` SDK lands with
``dashscope.base_http_api_url = "http://<host>/api/v1/"``. A stream is asked for by the header
``X-DashScope-SSE: enable`` (or ``Accept: text/event-stream``, or ``parameters.stream``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from thinkserve.api import flow
from thinkserve.api.dashscope import convert
from thinkserve.api.errors import retry_headers, status_of
from thinkserve.api.http import json_response, new_request_id
from thinkserve.api.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from thinkserve.core.errors import EngineFailure, ThinkserveError
from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.state import AppState

log = logging.getLogger(__name__)

GENERATION_PATH = "/api/v1/services/aigc/text-generation/generation"


def error_response(error: ThinkserveError, request_id: str) -> Response:
    return json_response(convert.error_body(error, request_id), status_of(error), retry_headers(error))


def wants_sse(headers: Headers) -> bool:
    sse = headers.get("x-dashscope-sse", "").strip().lower() == "enable"
    return sse or "text/event-stream" in headers.get("accept", "")


async def generation(request: Request) -> Response:
    state: AppState = request.app.state.thinkserve
    request_id = new_request_id()
    try:
        principal, body = await flow.receive(state, request)
        parsed = convert.parse_request(body, sse=wants_sse(request.headers))
        plan = state.service.prepare(parsed.chat)
        shape = convert.shape(parsed, plan)
        events = await flow.begin(state, principal, plan)
    except ThinkserveError as error:
        return error_response(error, request_id)
    if not parsed.chat.stream:
        try:
            collected = await flow.collect(events)
        except ThinkserveError as error:
            return error_response(error, request_id)
        return json_response(convert.generation_body(request_id, collected, shape))
    writer = convert.BlockWriter(request_id, shape)
    return StreamingResponse(
        _blocks(writer, events, request_id), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS
    )


def _block(writer: convert.BlockWriter, event: Event) -> bytes:
    if isinstance(event, ReasoningDelta):
        return writer.reasoning(event.text, event.usage)
    if isinstance(event, AnswerDelta):
        return writer.answer(event.text, event.usage)
    return writer.finish(event.reason, event.usage)


async def _blocks(
    writer: convert.BlockWriter, events: AsyncIterator[Event], request_id: str
) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            # The text shape writes no reasoning block: skip the empty bytes.
            if block := _block(writer, event):
                yield block
            if isinstance(event, Finished):
                break
    except ThinkserveError as error:
        yield writer.error(error, status_of(error))
    except Exception:
        log.exception("stream %s failed", request_id)
        failure = EngineFailure("The model failed while generating.")
        yield writer.error(failure, status_of(failure))
    finally:
        # A client that goes away closes this generator: close the stream now, so that usage is
        # recorded and the engine sequence cancelled without waiting for garbage collection.
        await flow.close(events)


def routes() -> list[BaseRoute]:
    return [Route(GENERATION_PATH, generation, methods=["POST"])]
