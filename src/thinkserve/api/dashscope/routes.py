"""Native (DashScope) routes (imports api).

``POST /api/v1/services/aigc/text-generation/generation``, where the ``dashscope`` SDK lands with
``dashscope.base_http_api_url = "http://<host>/api/v1/"``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from thinkserve.api import handler
from thinkserve.api.dashscope.dialect import DashScopeDialect
from thinkserve.core.errors import ThinkserveError

GENERATION_PATH = "/api/v1/services/aigc/text-generation/generation"


def error_response(error: ThinkserveError, request_id: str) -> Response:
    """An error in this dialect's shape (also used outside its routes: unknown URLs)."""
    return handler.error_response(DashScopeDialect(), error, request_id)


def routes() -> list[BaseRoute]:
    dialect = DashScopeDialect()

    async def generation(request: Request) -> Response:
        return await handler.handle(dialect, request)

    return [Route(GENERATION_PATH, generation, methods=["POST"])]
