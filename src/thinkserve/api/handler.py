"""The one request handler every dialect runs on: auth -> parse -> service -> render (imports api,
core, service, platform).

Authentication comes before the body is read, as Model Studio does. Errors before the first byte
are the dialect's error body with their own status; after it, the dialect's error frame.

Once the body is read, the handler watches the ASGI receive channel until a response starts: a
client that goes away (``http.disconnect``) while its request waits for admission, its first event,
or (non-streaming) its whole answer cancels that work, so that the engine sequence is cancelled and
the usage recorded as ``cancelled``. Once a stream has started, Starlette's own watch does the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from thinkserve.api.app_state import AppState
from thinkserve.api.dialect import Dialect, StreamWriter
from thinkserve.api.errors import retry_headers, status_of
from thinkserve.api.http import json_response, new_request_id, read_body, workspace_header
from thinkserve.api.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from thinkserve.core.errors import EngineFailure, ThinkserveError
from thinkserve.core.events import Collected
from thinkserve.platform.port import Principal
from thinkserve.service.flow import Running
from thinkserve.service.generation import Checked

log = logging.getLogger(__name__)

T = TypeVar("T")

OFF_LOOP_BYTES = 64 * 1024
"""Bodies from this size are parsed and validated in a worker thread: parsing a multi-megabyte
body takes milliseconds to tens of milliseconds that every other request would wait for."""


class ClientGone(Exception):
    """The client disconnected before its response started."""


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
        body = await read_body(request, state.settings.max_body_bytes)
        if len(body) < OFF_LOOP_BYTES:
            call = dialect.parse(body, request.headers)
        else:
            call = await asyncio.to_thread(dialect.parse, body, request.headers)
        checked = state.flow.prepare(call.chat)
        reply = call.reply(checked, request_id)
        if not call.chat.stream:
            collected = await _unless_gone(request, _answer(state, principal, checked))
            return json_response(reply.body(collected))
        running = await _unless_gone(request, state.flow.begin(principal, checked))
    except ThinkserveError as error:
        return error_response(dialect, error, request_id)
    except ClientGone:
        log.info("request %s: the client went away before its response", request_id)
        return Response(status_code=499)
    return StreamingResponse(
        _frames(reply.stream_writer(), running, request_id), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS
    )


async def _answer(state: AppState, principal: Principal, checked: Checked) -> Collected:
    running = await state.flow.begin(principal, checked)
    return await running.collect()


async def _unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result, or ``ClientGone`` once the client disconnected, ``work`` cancelled (its
    ``finally`` blocks record usage and cancel the engine sequence).

    ``work`` runs in this task, which the watch cancels (as ``asyncio.timeout`` does): no task of
    its own to start and switch to, on the path of every non-streaming request."""
    task = asyncio.current_task()
    assert task is not None
    watching = True
    gone = False

    def disconnected(watch: asyncio.Future[None]) -> None:
        nonlocal gone
        # Done callbacks run soon after, not at once: only while ``work`` is still awaited.
        if watching and not watch.cancelled() and watch.exception() is None:
            gone = True
            task.cancel()

    watch = asyncio.ensure_future(_disconnected(request))
    watch.add_done_callback(disconnected)
    try:
        return await work
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientGone from None
        raise
    finally:
        watching = False
        # Cancelling the watch while it waits on receive() loses no message (uvicorn).
        watch.cancel()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


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
