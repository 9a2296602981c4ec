"""``GET /models`` and ``GET /models/{name}``: every served name with its thinking rules (imports
api, catalogue, core).

A model card::

    {"id": "qwen-plus", "object": "model", "created": 1745485391, "owned_by": "thinkserve",
     "thinkserve": {"mode": "hybrid", "thinking_default": false, "soft_switch": false,
                    "non_stream": true, "max_cot": 81920, "max_input": 995904, "max_output": 32768,
                    "served_by": "/root/.cache/thinkserve/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                    "thinking": "prompted"}}

``served_by`` is the file that serves the name (a pulled model's path in its hub's cache).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from thinkserve.api.app_state import AppState
from thinkserve.api.handler import error_response
from thinkserve.api.http import json_response, new_request_id
from thinkserve.api.openai.dialect import OpenAIDialect
from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import ModelNotFound, ThinkserveError


def model_card(name: str, spec: ModelSpec, *, created: int, served_by: str, prompted: bool) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "thinkserve",
        "thinkserve": {
            "mode": spec.mode,
            "thinking_default": spec.thinks_by_default(),
            "soft_switch": spec.soft_switch,
            "non_stream": spec.non_stream,
            "max_cot": spec.max_cot,
            "max_input": spec.max_input,
            "max_output": spec.max_output,
            "served_by": served_by,
            # Prompted thinking: the model file has no native thinking; thinking is asked for
            # by a system instruction and an opened <think> block.
            "thinking": "prompted" if prompted else "native",
        },
    }


def _card(state: AppState, name: str) -> dict[str, Any]:
    spec = state.flow.models[name]
    return model_card(
        name,
        spec,
        created=state.created,
        served_by=state.model_files.get(spec.engine, spec.engine),
        prompted=state.flow.prompted(spec),
    )


async def list_models(request: Request) -> Response:
    state: AppState = request.app.state.thinkserve
    try:
        await state.gate.authenticate(request.headers.get("authorization"), None)
    except ThinkserveError as error:
        return error_response(OpenAIDialect(), error, new_request_id())
    return json_response({"object": "list", "data": [_card(state, n) for n in state.flow.models]})


async def get_model(request: Request) -> Response:
    state: AppState = request.app.state.thinkserve
    request_id = new_request_id()
    try:
        await state.gate.authenticate(request.headers.get("authorization"), None)
        name = request.path_params["model"]
        if name not in state.flow.models:
            raise ModelNotFound(name)
    except ThinkserveError as error:
        return error_response(OpenAIDialect(), error, request_id)
    return json_response(_card(state, name))
