"""Admin JSON API and ``/metrics`` (imports api, platform, monitor).

Every ``/admin/v1`` route needs an admin key (``Authorization: Bearer``)::

    GET    /admin/v1/usage?since=24h&until=...&model=qwen-plus&key=key_1a2b&by=key,mode
           -> {"object": "list", "data": [<one hour x model row, see platform.report>, ...]}
    GET    /admin/v1/keys        -> {"object": "list", "data": [{"id": "key_1a2b…", "name": ..., ...}]}
    POST   /admin/v1/keys  {"name": "ci", "workspace": "ws1", "rpm": 60, "tpm": 100000,
                            "quota_tokens": 1000000, "spend_limit": "25.00", "admin": false}
           -> {"id": "key_…", "key": "sk-…", ...}   (the secret, shown this once)
    DELETE /admin/v1/keys/{id}   -> {"id": "key_…", "revoked": true}

``GET /metrics`` is Prometheus's text format, without auth (it has no per-key labels).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from thinkserve.api.app_state import AppState
from thinkserve.api.http import json_response, new_request_id, read_body
from thinkserve.api.openai.routes import error_response
from thinkserve.core.errors import Forbidden, InvalidParameter, RouteNotFound, ThinkserveError
from thinkserve.monitor.metrics import Metrics
from thinkserve.platform import keys as keymod
from thinkserve.platform import report
from thinkserve.platform.billing import PriceError, from_money, to_money
from thinkserve.platform.limits import Limits
from thinkserve.platform.platform_gate import PlatformGate


def key_json(key: keymod.ApiKey, spent_nano: int | None = None) -> dict[str, Any]:
    limits = key.limits
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "workspace": key.workspace,
        "admin": key.admin,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "rps": limits.rps,
        "tps": limits.tps,
        "concurrency": limits.concurrency,
        "quota_tokens": key.quota_tokens,
        "spend_limit": None if key.spend_limit_nano is None else str(to_money(key.spend_limit_nano)),
        "spent": None if spent_nano is None else str(to_money(spent_nano)),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


async def _admin(request: Request) -> PlatformGate:
    state: AppState = request.app.state.thinkserve
    principal = await state.gate.authenticate(
        request.headers.get("authorization"), request.headers.get("x-dashscope-workspace")
    )
    if not principal.admin:
        raise Forbidden("This API key may not use the admin API.")
    gate = state.gate
    if not isinstance(gate, PlatformGate):
        raise RouteNotFound("The admin API needs the platform store, which this server does not run.")
    return gate


async def usage(request: Request) -> Response:
    try:
        gate = await _admin(request)
        q = request.query_params
        try:
            since = report.parse_time(q.get("since", "24h"))
            until = report.parse_time(q["until"]) if "until" in q else None
            by = [b for b in q.get("by", "").split(",") if b]
            # Show the requests that just finished; a store that is down must not hang the report.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await gate.flush()
            rows = await report.hourly(
                gate.store, since, until, model=q.get("model"), key_id=q.get("key"), by=by
            )
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from exc
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({"object": "list", "data": [r.to_json() for r in rows]})


async def list_keys(request: Request) -> Response:
    try:
        gate = await _admin(request)
        keys = await gate.store.keys()
        spent = await gate.store.spent([k.id for k in keys])
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({"object": "list", "data": [key_json(k, spent.get(k.id, 0)) for k in keys]})


_INTS = ("rpm", "tpm", "rps", "tps", "concurrency", "quota_tokens")


def _new_key(body: bytes) -> tuple[keymod.ApiKey, str]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise InvalidParameter("name is required", param="name")
    unknown = set(raw) - {"name", "workspace", "admin", "spend_limit", *_INTS}
    if unknown:
        raise InvalidParameter(f"unknown field(s) {sorted(unknown)}")
    for name in _INTS:
        value = raw.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidParameter(f"{name} must be a count >= 0", param=name)
    workspace = raw.get("workspace")
    if workspace is not None and not isinstance(workspace, str):
        raise InvalidParameter("workspace must be a string", param="workspace")
    spend: int | None = None
    if raw.get("spend_limit") is not None:
        try:
            spend = from_money(raw["spend_limit"])
        except PriceError as exc:
            raise InvalidParameter(str(exc), param="spend_limit") from exc
    return keymod.mint(
        raw["name"].strip(),
        workspace=workspace,
        admin=bool(raw.get("admin", False)),
        limits=Limits(*(raw.get(n) for n in _INTS[:5])),
        quota_tokens=raw.get("quota_tokens"),
        spend_limit_nano=spend,
    )


async def create_key(request: Request) -> Response:
    try:
        gate = await _admin(request)
        key, secret = _new_key(await read_body(request, 64 * 1024))
        await gate.create_key(key)
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({**key_json(key), "key": secret}, 201)


async def revoke_key(request: Request) -> Response:
    try:
        gate = await _admin(request)
        key_id = request.path_params["key_id"]
        if not await gate.revoke(key_id):
            raise RouteNotFound(f"No active key {key_id!r}.")
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({"id": key_id, "revoked": True, "revoked_at": time.time()})


async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/v1/usage", usage, methods=["GET"]),
        Route("/admin/v1/keys", list_keys, methods=["GET"]),
        Route("/admin/v1/keys", create_key, methods=["POST"]),
        Route("/admin/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
