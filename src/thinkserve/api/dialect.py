"""The contract every wire dialect fulfils; ``api.handler`` runs any of them (imports core).

A dialect is a folder ``api/<name>/`` with pure converters (``convert.py``), their contract
implementation (``dialect.py``) and its routes (``routes.py``). Per request::

    call = dialect.parse(body, headers)           # ChatRequest + this dialect's output options
    reply = call.reply(decision, request_id)      # once the service decided; may still refuse
    reply.body(collected)                         # non-streaming: the JSON body
    writer = reply.stream_writer()                # streaming: head, frames per event, tail
    dialect.error_body(error, request_id)         # before the first byte
    writer.error_frame(error)                     # after it: the stream ends with this frame
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.datastructures import Headers

from thinkserve.core.errors import ThinkserveError
from thinkserve.core.events import Collected, Event
from thinkserve.core.types import ChatRequest, ThinkingDecision


class StreamWriter(Protocol):
    """Writes one streamed response as wire frames (``b""``: nothing to write)."""

    def head(self) -> bytes:
        """Frames before the first event."""
        ...

    def frames(self, event: Event) -> tuple[bytes, ...]:
        """The frames of one event, each sent as it is."""
        ...

    def tail(self) -> bytes:
        """Frames after the last event."""
        ...

    def error_frame(self, error: ThinkserveError) -> bytes:
        """An error once the stream has started: the last frame."""
        ...


class Reply(Protocol):
    """How one request's response is written."""

    def body(self, collected: Collected) -> dict[str, Any]:
        """The non-streaming response body."""
        ...

    def stream_writer(self) -> StreamWriter: ...


class Call(Protocol):
    """One parsed request, in core terms plus this dialect's output options."""

    @property
    def chat(self) -> ChatRequest: ...

    def reply(self, decision: ThinkingDecision, request_id: str) -> Reply:
        """The response's writer; raises ``InvalidParameter`` for output options the decision rules out."""
        ...


class Dialect(Protocol):
    """A wire API: its parser and its error body."""

    def parse(self, body: bytes, headers: Headers) -> Call:
        """Body bytes and headers -> a call; raises ``InvalidParameter`` on any bad input."""
        ...

    def error_body(self, error: ThinkserveError, request_id: str) -> dict[str, Any]: ...
