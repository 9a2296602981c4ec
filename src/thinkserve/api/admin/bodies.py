"""The admin API's own bodies: the new-key request and the error body (imports api, core, platform).

A new key (every field but ``name`` optional; counts >= 0; ``spend_limit`` an amount)::

    {"name": "ci", "workspace": "ws1", "rpm": 60, "tpm": 100000, "rps": 1, "tps": 1667,
     "concurrency": 4, "quota_tokens": 1000000, "spend_limit": "25.00", "admin": false}

An error, in the shape of the OpenAI-compatible API, with Model Studio's native code for access
errors::

    {"error": {"message": "This API key may not use the admin API.", "type": "AccessDenied",
               "param": null, "code": "AccessDenied"}, "request_id": "5f0c…"}
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from thinkserve.api.errors import TYPE_AND_CODE, status_of
from thinkserve.api.http import json_response
from thinkserve.core.errors import Forbidden, InvalidParameter, ThinkserveError
from thinkserve.platform.administration import KeyFieldError, new_key
from thinkserve.platform.billing import PriceError
from thinkserve.platform.keys import ApiKey
from thinkserve.platform.limits import Limits

_INTS = ("rpm", "tpm", "rps", "tps", "concurrency", "quota_tokens")


def error_response(error: ThinkserveError, request_id: str) -> Response:
    kind, code = TYPE_AND_CODE[error.kind]
    if isinstance(error, Forbidden):
        kind = code = error.code
    body = {
        "error": {"message": error.message, "type": kind, "param": error.param, "code": code},
        "request_id": request_id,
    }
    return json_response(body, status_of(error))


def parse_new_key(body: bytes) -> tuple[ApiKey, str]:
    """The key a ``POST /admin/v1/keys`` body asks for, and its secret; raises ``InvalidParameter``.

    Types are strict, as JSON has them: ``admin`` is ``true`` or ``false`` (never ``"false"`` or
    ``0``), counts are integers (never ``true``, ``1.5`` or ``"60"``), ``spend_limit`` is a decimal
    string or a number; each value must also fit its column (``administration.new_key``).
    """
    try:
        raw: Any = orjson.loads(body)
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
    admin = raw.get("admin")
    if admin is not None and not isinstance(admin, bool):
        raise InvalidParameter("admin must be true or false", param="admin")
    spend_limit = raw.get("spend_limit")
    if spend_limit is not None and (
        isinstance(spend_limit, bool) or not isinstance(spend_limit, str | int | float)
    ):
        raise InvalidParameter(
            "spend_limit must be an amount: a decimal string or a number", param="spend_limit"
        )
    try:
        return new_key(
            raw["name"].strip(),
            workspace=workspace,
            admin=bool(admin),
            limits=Limits(*(raw.get(n) for n in _INTS[:5])),
            quota_tokens=raw.get("quota_tokens"),
            spend_limit=spend_limit,
        )
    except KeyFieldError as exc:
        raise InvalidParameter(str(exc), param=exc.param) from exc
    except PriceError as exc:
        raise InvalidParameter(str(exc), param="spend_limit") from exc
