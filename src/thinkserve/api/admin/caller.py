"""What any valid key may read about itself: ``GET /admin/v1/me`` and ``GET /admin/v1/me/usage``
(imports api, core, platform).

The console asks these to know who logged in, and to show a normal key its own usage (the rest of
``/admin/v1`` needs an admin key)::

    GET /admin/v1/me
        -> {"id": "key_1a2b3c4d5e6f", "name": "alice", "workspace": null, "admin": false}
           (``workspace``: the one the key is bound to; operator keys have ids ``bootstrap-N``)
    GET /admin/v1/me/usage?since=24h&until=...&model=qwen-plus&workspace=ws1&by=mode
        -> {"object": "list", "data": [<one hour x model row of this key, see platform.report>]}

``key=`` naming another key is a 403 ``AccessDenied``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from thinkserve.api.admin.bodies import error_response
from thinkserve.api.admin.usage_query import UsageQuery
from thinkserve.api.app_state import AppState
from thinkserve.api.http import json_response, new_request_id, workspace_header
from thinkserve.core.errors import Forbidden, RouteNotFound, ThinkserveError
from thinkserve.platform.port import Principal


async def _caller(request: Request) -> Principal:
    state: AppState = request.app.state.thinkserve
    return await state.gate.authenticate(request.headers.get("authorization"), workspace_header(request))


async def me(request: Request) -> Response:
    try:
        principal = await _caller(request)
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response(
        {
            "id": principal.key_id,
            "name": principal.name,
            "workspace": principal.bound,
            "admin": principal.admin,
        }
    )


async def my_usage(request: Request) -> Response:
    try:
        principal = await _caller(request)
        state: AppState = request.app.state.thinkserve
        admin = state.gate.administration()
        if admin is None:
            raise RouteNotFound("Usage reports need the platform store, which this server does not run.")
        query = UsageQuery.parse(request.query_params)
        if query.key_id not in (None, principal.key_id):
            raise Forbidden("This API key may read its own usage only.")
        own = UsageQuery(query.since, query.until, query.model, principal.key_id, query.workspace, query.by)
        rows = await own.rows(admin, scope=None)
    except ThinkserveError as error:
        return error_response(error, new_request_id())
    return json_response({"object": "list", "data": [r.to_json() for r in rows]})


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/v1/me", me, methods=["GET"]),
        Route("/admin/v1/me/usage", my_usage, methods=["GET"]),
    ]
