"""``GET /models`` and ``GET /models/{name}``: every served name with its thinking rules (imports
api, catalogue, core).

A model card::

    {"id": "qwen-plus", "object": "model", "created": 1745485391, "owned_by": "thinkserve",
     "thinkserve": {"mode": "hybrid", "thinking_default": false, "soft_switch": false,
                    "non_stream": true, "max_cot": 81920, "max_input": 995904, "max_output": 32768,
                    "served_by": "/root/.cache/thinkserve/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                    "thinking": "prompted",
                    "price": {"input": "0.8", "cached_input": "0.16", "output": "2",
                              "thinking_output": "8"}}}

``served_by`` is the file that serves the name (a pulled model's path in its hub's cache).
``price`` is the configured price per million tokens (``[prices."NAME"]``, defaults filled in as
billing applies them), or null when the name has none.
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
from thinkserve.platform.billing import Price


def price_json(price: Price | None) -> dict[str, str] | None:
    if price is None:
        return None
    return {
        "input": str(price.input),
        "cached_input": str(price.input if price.cached_input is None else price.cached_input),
        "output": str(price.output),
        "thinking_output": str(price.output if price.thinking_output is None else price.thinking_output),
    }


def model_card(
    name: str,
    spec: ModelSpec,
    *,
    created: int,
    served_by: str,
    prompted: bool,
    price: Price | None = None,
) -> dict[str, Any]:
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
            "price": price_json(price),
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
        price=state.settings.prices.get(name),
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
