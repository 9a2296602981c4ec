"""OpenAI-compatible routes, under ``/compatible-mode/v1`` and ``/v1`` (imports api)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from thinkserve.api import handler
from thinkserve.api.openai.dialect import OpenAIDialect
from thinkserve.api.openai.models import get_model, list_models
from thinkserve.core.errors import ThinkserveError


def error_response(error: ThinkserveError, request_id: str) -> Response:
    """An error in this dialect's shape (also used outside its routes: unknown URLs, admin)."""
    return handler.error_response(OpenAIDialect(), error, request_id)


def routes() -> list[BaseRoute]:
    dialect = OpenAIDialect()

    async def chat_completions(request: Request) -> Response:
        return await handler.handle(dialect, request)

    out: list[BaseRoute] = []
    for prefix in ("/compatible-mode/v1", "/v1"):
        out += [
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{prefix}/models", list_models, methods=["GET"]),
            Route(f"{prefix}/models/{{model:path}}", get_model, methods=["GET"]),
        ]
    return out
