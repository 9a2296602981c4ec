"""One exception type per failure; each dialect renders them (imports nothing from thinkserve).

Messages are Model Studio's own where it has one, so that client code matching on them keeps working.
``ConfigError`` is the one error no client sees: the server refuses to start with it.
"""

from __future__ import annotations

from enum import Enum


class ConfigError(ValueError):
    """The catalogue, a config file or a flag is invalid (the server refuses to start).

    Raised by every layer that reads settings (catalogue, config, engine registry, platform
    parsers), so it lives at the bottom of the import graph.
    """


class ErrorKind(Enum):
    """The failure classes every dialect knows how to render."""

    INVALID_PARAMETER = "invalid_parameter"
    INVALID_API_KEY = "invalid_api_key"
    FORBIDDEN = "forbidden"
    MODEL_NOT_FOUND = "model_not_found"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    INTERNAL = "internal"


class ThinkserveError(Exception):
    """Base of every error a client may see."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidParameter(ThinkserveError):
    """The request is malformed or a parameter is out of range (HTTP 400)."""

    kind = ErrorKind.INVALID_PARAMETER


class InvalidApiKey(ThinkserveError):
    """No key, or a key the server does not know (HTTP 401)."""

    kind = ErrorKind.INVALID_API_KEY

    def __init__(self, message: str = "Incorrect API key provided. ") -> None:
        super().__init__(message)


_ARREARAGE = "Access denied, please make sure your account is in good standing."


class Arrearage(InvalidParameter):
    """The key's spending limit is used up (HTTP 400, Model Studio's ``Arrearage``)."""

    code = "Arrearage"

    def __init__(self, message: str = _ARREARAGE) -> None:
        super().__init__(message)


class Forbidden(ThinkserveError):
    """A valid key that may not do this (HTTP 403); ``code`` is Model Studio's native code."""

    kind = ErrorKind.FORBIDDEN
    code = "AccessDenied"


class WorkspaceDenied(Forbidden):
    """The key is bound to another workspace than ``X-DashScope-WorkSpace`` names (HTTP 403)."""

    code = "Workspace.AccessDenied"


class ModelNotFound(ThinkserveError):
    """The requested model name is not served here (HTTP 404)."""

    kind = ErrorKind.MODEL_NOT_FOUND

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )
        self.model = model


class RouteNotFound(ThinkserveError):
    """No such URL (HTTP 404)."""

    kind = ErrorKind.NOT_FOUND


class MethodNotAllowed(ThinkserveError):
    """The URL exists but not for this method (HTTP 405)."""

    kind = ErrorKind.METHOD_NOT_ALLOWED


class RequestTooLarge(ThinkserveError):
    """The body exceeds the configured limit (HTTP 413)."""

    kind = ErrorKind.TOO_LARGE


class RateLimited(ThinkserveError):
    """A rate limit or quota was hit (HTTP 429); ``code`` is Model Studio's native code."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(self, message: str, *, code: str = "Throttling.RateQuota", retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class Overloaded(ThinkserveError):
    """The engine queue is full (HTTP 503)."""

    kind = ErrorKind.OVERLOADED


class EngineFailure(ThinkserveError):
    """The engine failed; the message shown to clients is generic, details go to the log."""

    kind = ErrorKind.INTERNAL
