"""OpenAI-compatible routes: auth -> convert -> service -> frames (imports api, service, platform)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from thinkserve.api import flow
from thinkserve.api.errors import retry_headers, status_of
from thinkserve.api.http import json_response, new_request_id
from thinkserve.api.openai import convert
from thinkserve.api.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from thinkserve.core.errors import EngineFailure, ModelNotFound, ThinkserveError
from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.state import AppState

log = logging.getLogger(__name__)


def error_response(error: ThinkserveError, request_id: str) -> Response:
    return json_response(convert.error_body(error, request_id), status_of(error), retry_headers(error))


async def chat_completions(request: Request) -> Response:
    state: AppState = request.app.state.thinkserve
    request_id = new_request_id()
    try:
        principal, body = await flow.receive(state, request)
        chat, include_usage = convert.parse_request(body)
        plan = state.service.prepare(chat)
        events = await flow.begin(state, principal, plan)
    except ThinkserveError as error:
        return error_response(error, request_id)
    completion_id = f"chatcmpl-{uuid.uuid4()}"
    created = int(time.time())
    if not chat.stream:
        try:
            collected = await flow.collect(events)
        except ThinkserveError as error:
            return error_response(error, request_id)
        body_out = convert.completion_body(
            completion_id, chat.model, created, collected, thinking=plan.thinking
        )
        return json_response(body_out)
    writer = convert.ChunkWriter(completion_id, chat.model, created, thinking=plan.thinking)
    return StreamingResponse(
        _frames(writer, events, include_usage, request_id),
        media_type=SSE_MEDIA_TYPE,
        headers=SSE_HEADERS,
    )


async def _frames(
    writer: convert.ChunkWriter, events: AsyncIterator[Event], include_usage: bool, request_id: str
) -> AsyncIterator[bytes]:
    yield writer.first()
    try:
        async for event in events:
            if isinstance(event, ReasoningDelta):
                yield writer.reasoning(event.text)
            elif isinstance(event, AnswerDelta):
                yield writer.answer(event.text)
            elif isinstance(event, Finished):
                yield writer.finish(event.reason)
                if include_usage:
                    yield writer.usage(event.usage)
        yield writer.done()
    except ThinkserveError as error:
        yield convert.error_frame(error, request_id)
    except Exception:
        log.exception("stream %s failed", request_id)
        yield convert.error_frame(EngineFailure("The model failed while generating."), request_id)
    finally:
        # A client that goes away closes this generator: close the stream now, so that usage is
        # recorded and the engine sequence cancelled without waiting for garbage collection.
        await flow.close(events)


async def list_models(request: Request) -> Response:
    state: AppState = request.app.state.thinkserve
    try:
        await state.gate.authenticate(request.headers.get("authorization"), None)
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({"object": "list", "data": [state.model_card(n) for n in state.service.models]})


async def get_model(request: Request) -> Response:
    state: AppState = request.app.state.thinkserve
    request_id = new_request_id()
    try:
        await state.gate.authenticate(request.headers.get("authorization"), None)
        name = request.path_params["model"]
        if name not in state.service.models:
            raise ModelNotFound(name)
    except ThinkserveError as error:
        return error_response(error, request_id)
    return json_response(state.model_card(name))


def routes() -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for prefix in ("/compatible-mode/v1", "/v1"):
        out += [
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{prefix}/models", list_models, methods=["GET"]),
            Route(f"{prefix}/models/{{model:path}}", get_model, methods=["GET"]),
        ]
    return out
