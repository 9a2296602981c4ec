"""What an engine server is: its protocol, context length and model (imports engine.remote.wire).

Detection asks the endpoints only one of the servers has::

    GET /props      -> {"default_generation_settings": {"n_ctx": 4096, ...}, ...}   llama.cpp
    GET /v1/models  -> {"data": [{"id": "Qwen/Qwen3-8B", "max_model_len": 32768,
                                  "owned_by": "vllm", ...}]}                        vLLM

A configured protocol skips the guess but still reads the context length.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from thinkserve.engine.remote.settings import WireName
from thinkserve.engine.remote.wire import ServerInfo, WireError, int_or_none


async def probe(client: aiohttp.ClientSession, url: str, protocol: WireName | None) -> ServerInfo:
    """Ask the server at ``url`` what it is; raises ``aiohttp.ClientError``, ``TimeoutError`` or
    ``WireError``."""
    if protocol in (None, "llamacpp"):
        status, raw = await _get(client, url, "/props")
        if status == 200:
            info = _llamacpp(_json("/props", raw))
            if info is not None:
                return info
        if protocol == "llamacpp":
            raise WireError(f"GET /props answered {status}: not a llama.cpp server")
    status, raw = await _get(client, url, "/v1/models")
    if status != 200:
        raise WireError(f"GET /v1/models answered {status}")
    info = _vllm(_json("/v1/models", raw), configured=protocol == "vllm")
    if info is None:
        raise WireError("the server is neither llama.cpp (/props) nor vLLM (/v1/models with max_model_len)")
    return info


async def _get(client: aiohttp.ClientSession, url: str, path: str) -> tuple[int, bytes]:
    async with client.get(url + path, allow_redirects=False) as response:
        return response.status, await response.read()


def _json(path: str, raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"{path} did not answer JSON") from exc


def _llamacpp(data: Any) -> ServerInfo | None:
    if not isinstance(data, dict):
        return None
    settings = data.get("default_generation_settings")
    if not isinstance(settings, dict):
        return None
    return ServerInfo("llamacpp", int_or_none(settings.get("n_ctx")), None)


def _vllm(data: Any, *, configured: bool) -> ServerInfo | None:
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list) or not models or not isinstance(models[0], dict):
        return None
    first = models[0]
    context = int_or_none(first.get("max_model_len"))
    if context is None and not configured and first.get("owned_by") != "vllm":
        return None
    model = first.get("id")
    return ServerInfo("vllm", context, model if isinstance(model, str) else None)
