"""The OpenAPI document of both dialects, served at ``GET /openapi.json`` (imports api schemas).

Built from the same pydantic wire models the dialects parse with, so it cannot drift from what
the server accepts. Clients and fuzzers (schemathesis in the fault suite) read it::

    {"openapi": "3.1.0", "info": {"title": "thinkserve", ...},
     "paths": {"/compatible-mode/v1/chat/completions": {"post": {...}}, ...},
     "components": {"schemas": {"ChatCompletionRequest": {...}, ...}}}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from thinkserve import __version__
from thinkserve.api.dashscope.schemas import GenerationRequest
from thinkserve.api.openai.schemas import ChatCompletionRequest

_REF = "#/components/schemas/{model}"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(name: str) -> dict[str, Any]:
    ref = {"$ref": _REF.format(model=name)}
    return {
        "400": _json(ref, "Bad request"),
        "401": _json(ref, "No key or an unknown key"),
        "403": _json(ref, "The key may not do this"),
        "404": _json(ref, "Unknown model"),
        "413": _json(ref, "Body too large"),
        "429": _json(ref, "Rate limited"),
        "503": _json(ref, "Engine queue full or engine down"),
    }


def _generation(request: str, errors: str, summary: str, sse: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": _REF.format(model=request)}}},
            },
            "responses": {
                "200": {
                    "description": "The completion, or its stream",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}, "example": sse},
                    },
                },
                **_errors(errors),
            },
        }
    }


_OPENAI_ERROR = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": "string"},
            },
        },
        "request_id": {"type": "string"},
    },
}
_DASHSCOPE_ERROR = {
    "type": "object",
    "required": ["code", "message", "request_id"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


def openapi_document() -> dict[str, Any]:
    """The whole document (built once by the app factory)."""
    models: list[tuple[type[BaseModel], Any]] = [
        (ChatCompletionRequest, "validation"),
        (GenerationRequest, "validation"),
    ]
    _, defs = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["OpenAIError"] = _OPENAI_ERROR
    schemas["DashScopeError"] = _DASHSCOPE_ERROR
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "thinkserve",
            "version": __version__,
            "description": "Model Studio's deep-thinking APIs, self-hosted: the OpenAI-compatible "
            "chat completions and the DashScope-native generation API.",
        },
        "paths": {
            "/compatible-mode/v1/chat/completions": _generation(
                "ChatCompletionRequest",
                "OpenAIError",
                'Chat completion (OpenAI-compatible); stream with "stream": true',
                'data: {"choices":[{"delta":{"reasoning_content":"..."}}],...}\n\ndata: [DONE]\n\n',
            ),
            "/api/v1/services/aigc/text-generation/generation": _generation(
                "GenerationRequest",
                "DashScopeError",
                "Text generation (DashScope-native); stream with the header X-DashScope-SSE: enable",
                'id:1\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{...},"usage":{...}}\n\n',
            ),
            "/compatible-mode/v1/models": {
                "get": {
                    "summary": "The served model names and their thinking rules",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json({"type": "object"}, "The model list"),
                        **_errors("OpenAIError"),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Each engine's state",
                    "responses": {
                        "200": _json({"type": "object"}, "Every engine up, or some down"),
                        "503": _json({"type": "object"}, "No engine up"),
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
