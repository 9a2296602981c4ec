"""Admin JSON API and ``/metrics`` (imports api, platform, monitor).

Every ``/admin/v1`` route needs an admin key (``Authorization: Bearer``) and a gate with admin
operations (``platform.port.Administration``; else 404). An admin key bound to a workspace W sees,
creates, revokes and reads the usage of W's keys only (a key for another workspace, or an unbound
one, is a 403 ``AccessDenied``); operator keys and unbound admin keys reach every workspace::

    GET    /admin/v1/usage?since=24h&until=...&model=qwen-plus&key=key_1a2b&workspace=ws1&by=key,mode
           -> {"object": "list", "data": [<one hour x model row, see platform.report>, ...]}
           (``workspace``: only the usage recorded under it; see api.admin.usage_query)
    GET    /admin/v1/keys        -> {"object": "list", "data": [<a key, see platform.administration>]}
    POST   /admin/v1/keys  {"name": "ci", "workspace": "ws1", "rpm": 60, "tpm": 100000,
                            "quota_tokens": 1000000, "spend_limit": "25.00", "admin": false}
           -> {"id": "key_…", "key": "sk-…", ...}   (the secret, shown this once)
    DELETE /admin/v1/keys/{id}   -> {"id": "key_…", "revoked": true, "revoked_at": 1732560000.1}
           (by id, or by a shown prefix that names exactly one active key; a prefix shared by
           several is a 400 listing their ids, and revokes nothing)
    GET    /admin/v1/engines     -> {"object": "list", "at": 1732560000.1,
                                     "data": [<an engine, see monitor.engine_figures>]}

Any valid key (admin or not) may read ``/admin/v1/me`` and its own ``/admin/v1/me/usage``
(``api.admin.caller``).

``GET /metrics`` is Prometheus's text format, without auth (it has no per-key labels).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from thinkserve.api.admin import caller
from thinkserve.api.admin.bodies import error_response, parse_new_key
from thinkserve.api.admin.usage_query import UsageQuery
from thinkserve.api.app_state import AppState
from thinkserve.api.http import json_response, new_request_id, read_body, workspace_header
from thinkserve.core.errors import Forbidden, InvalidParameter, RouteNotFound, ThinkserveError
from thinkserve.monitor.engine_figures import engine_figures
from thinkserve.monitor.metrics import Metrics
from thinkserve.platform.administration import OutOfScope, key_json
from thinkserve.platform.columns import KEY_ID_LENGTH
from thinkserve.platform.keys import AmbiguousKey
from thinkserve.platform.port import Administration


async def _admin(request: Request) -> tuple[Administration, str | None]:
    """The admin operations and the caller's scope: its key's workspace, None for global rights."""
    state: AppState = request.app.state.thinkserve
    principal = await state.gate.authenticate(request.headers.get("authorization"), workspace_header(request))
    if not principal.admin:
        raise Forbidden("This API key may not use the admin API.")
    admin = state.gate.administration()
    if admin is None:
        raise RouteNotFound("The admin API needs the platform store, which this server does not run.")
    return admin, principal.bound


async def usage(request: Request) -> Response:
    try:
        admin, scope = await _admin(request)
        rows = await UsageQuery.parse(request.query_params).rows(admin, scope=scope)
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({"object": "list", "data": [r.to_json() for r in rows]})


async def list_keys(request: Request) -> Response:
    try:
        admin, scope = await _admin(request)
        keys = await admin.list_keys(scope=scope)
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({"object": "list", "data": [key_json(k, spent) for k, spent in keys]})


async def create_key(request: Request) -> Response:
    try:
        admin, scope = await _admin(request)
        key, secret = parse_new_key(await read_body(request, 64 * 1024))
        try:
            await admin.create_key(key, scope=scope)
        except OutOfScope as exc:
            raise Forbidden(str(exc)) from exc
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({**key_json(key), "key": secret}, 201)


async def revoke_key(request: Request) -> Response:
    try:
        admin, scope = await _admin(request)
        key_id = request.path_params["key_id"]
        # An id (or shown prefix) the store could never hold is no key at all.
        revoked = None
        if len(key_id) <= KEY_ID_LENGTH and key_id.isprintable():
            try:
                revoked = await admin.revoke(key_id, scope=scope)
            except AmbiguousKey as exc:
                raise InvalidParameter(str(exc), param="key_id") from exc
        if revoked is None:
            raise RouteNotFound(f"No active key {key_id!r}.")
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({"id": revoked, "revoked": True, "revoked_at": time.time()})


async def engines(request: Request) -> Response:
    """Every engine's live figures, the ones ``/metrics`` serves (see ``monitor.engine_figures``)."""
    try:
        await _admin(request)
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    figures = engine_figures(request.app.state.engines, request.app.state.engine_slots)
    return json_response({"object": "list", "at": time.time(), "data": [f.to_json() for f in figures]})


async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/v1/usage", usage, methods=["GET"]),
        Route("/admin/v1/keys", list_keys, methods=["GET"]),
        Route("/admin/v1/keys", create_key, methods=["POST"]),
        Route("/admin/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/admin/v1/engines", engines, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *caller.routes(),
    ]
