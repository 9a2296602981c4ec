"""Request plumbing shared by the dialects: body reading, ids, JSON responses, the workspace header
(imports core, platform.columns)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from thinkserve.core.errors import InvalidParameter, RequestTooLarge
from thinkserve.core.ids import uuid_text
from thinkserve.platform.columns import NAME_LENGTH

WORKSPACE_HEADER = "X-DashScope-WorkSpace"


def new_request_id() -> str:
    return uuid_text()


def workspace_header(request: Request) -> str | None:
    """The caller's ``X-DashScope-WorkSpace``, refused at the door when longer than the store keeps
    (``usage.workspace``): a usage record that cannot be stored must never be admitted."""
    value = request.headers.get(WORKSPACE_HEADER)
    if value is not None and len(value) > NAME_LENGTH:
        raise InvalidParameter(
            f"The {WORKSPACE_HEADER} header must be at most {NAME_LENGTH} characters.",
            param=WORKSPACE_HEADER,
        )
    # HTTP parsers refuse most control characters in headers; what one lets through, the store
    # (PostgreSQL refuses NUL) must not see either.
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidParameter(
            f"The {WORKSPACE_HEADER} header must not contain control characters.", param=WORKSPACE_HEADER
        )
    return value


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body exceeds {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body exceeds {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)
