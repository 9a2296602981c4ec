"""Status codes and codes of each error kind, shared by the dialects (imports core)."""

from __future__ import annotations

from typing import assert_never

from thinkserve.core.errors import ErrorKind, RateLimited, ThinkserveError

#: ``(type, code)`` of each kind in OpenAI's error body shape, which the OpenAI-compatible dialect
#: and the admin API both answer in.
TYPE_AND_CODE = {
    ErrorKind.INVALID_PARAMETER: ("invalid_request_error", "invalid_parameter_error"),
    ErrorKind.INVALID_API_KEY: ("invalid_request_error", "invalid_api_key"),
    ErrorKind.FORBIDDEN: ("invalid_request_error", "access_denied"),
    ErrorKind.MODEL_NOT_FOUND: ("invalid_request_error", "model_not_found"),
    ErrorKind.NOT_FOUND: ("invalid_request_error", "not_found"),
    ErrorKind.METHOD_NOT_ALLOWED: ("invalid_request_error", "method_not_allowed"),
    ErrorKind.TOO_LARGE: ("invalid_request_error", "request_too_large"),
    ErrorKind.RATE_LIMITED: ("requests", "limit_requests"),
    ErrorKind.OVERLOADED: ("service_unavailable_error", "service_unavailable"),
    ErrorKind.INTERNAL: ("internal_error", "internal_error"),
}


def status_of(error: ThinkserveError) -> int:
    match error.kind:
        case ErrorKind.INVALID_PARAMETER:
            return 400
        case ErrorKind.INVALID_API_KEY:
            return 401
        case ErrorKind.FORBIDDEN:
            return 403
        case ErrorKind.MODEL_NOT_FOUND | ErrorKind.NOT_FOUND:
            return 404
        case ErrorKind.METHOD_NOT_ALLOWED:
            return 405
        case ErrorKind.TOO_LARGE:
            return 413
        case ErrorKind.RATE_LIMITED:
            return 429
        case ErrorKind.OVERLOADED:
            return 503
        case ErrorKind.INTERNAL:
            return 500
        case _:
            assert_never(error.kind)


def retry_headers(error: ThinkserveError) -> dict[str, str]:
    """``Retry-After`` for throttling, so clients back off instead of hammering."""
    if isinstance(error, RateLimited):
        return {"retry-after": str(max(1, round(error.retry_after)))}
    return {}
