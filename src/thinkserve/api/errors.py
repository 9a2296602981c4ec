"""Status codes and codes of each error kind, shared by the dialects (imports core)."""

from __future__ import annotations

from typing import assert_never

from thinkserve.core.errors import ErrorKind, RateLimited, ThinkserveError


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
