"""The one request handler every dialect runs on: auth -> parse -> service -> render (imports api,
core, service, platform).

Authentication comes before the body is read, as Model Studio does. Errors before the first byte
are the dialect's error body with their own status; after it, the dialect's error frame.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from thinkserve.api.app_state import AppState
from thinkserve.api.dialect import Dialect, StreamWriter
from thinkserve.api.errors import retry_headers, status_of
from thinkserve.api.http import json_response, new_request_id, read_body, workspace_header
from thinkserve.api.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from thinkserve.core.errors import EngineFailure, ThinkserveError
from thinkserve.platform.port import Principal
from thinkserve.service.flow import Running

log = logging.getLogger(__name__)


def error_response(dialect: Dialect, error: ThinkserveError, request_id: str) -> Response:
    return json_response(dialect.error_body(error, request_id), status_of(error), retry_headers(error))


async def authenticate(state: AppState, request: Request) -> Principal:
    return await state.gate.authenticate(request.headers.get("authorization"), workspace_header(request))


async def handle(dialect: Dialect, request: Request) -> Response:
    """Serve one generation request in ``dialect``."""
    state: AppState = request.app.state.thinkserve
    request_id = new_request_id()
    try:
        principal = await authenticate(state, request)
        call = dialect.parse(await read_body(request, state.settings.max_body_bytes), request.headers)
        checked = state.flow.prepare(call.chat)
        reply = call.reply(checked, request_id)
        running = await state.flow.begin(principal, checked)
    except ThinkserveError as error:
        return error_response(dialect, error, request_id)
    if not call.chat.stream:
        try:
            collected = await running.collect()
        except ThinkserveError as error:
            return error_response(dialect, error, request_id)
        return json_response(reply.body(collected))
    return StreamingResponse(
        _frames(reply.stream_writer(), running, request_id), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS
    )


async def _frames(writer: StreamWriter, running: Running, request_id: str) -> AsyncIterator[bytes]:
    try:
        if head := writer.head():
            yield head
        async for event in running.events:
            for frame in writer.frames(event):
                yield frame
        if tail := writer.tail():
            yield tail
    except ThinkserveError as error:
        yield writer.error_frame(error)
    except Exception:
        log.exception("stream %s failed", request_id)
        yield writer.error_frame(EngineFailure("The model failed while generating."))
    finally:
        # A client that goes away closes this generator: close the stream now, so that usage is
        # recorded and the engine sequence cancelled without waiting for garbage collection.
        await running.close()
