"""A new dialect is its contract implementation plus a route: the generic handler does the rest."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.conftest import API_KEY, app_with
from thinkserve.api import handler
from thinkserve.core.errors import ThinkserveError
from thinkserve.core.events import AnswerDelta, Collected, Event, ReasoningDelta
from thinkserve.core.types import ChatRequest, Message, ThinkingDecision
from thinkserve.engine.fake.engine import FakeEngine


class LineStream:
    def head(self) -> bytes:
        return b"begin\n"

    def frames(self, event: Event) -> tuple[bytes, ...]:
        if isinstance(event, ReasoningDelta):
            return (b"R " + event.text.encode() + b"\n",)
        if isinstance(event, AnswerDelta):
            return (b"A " + event.text.encode() + b"\n",)
        return (b"F " + event.reason.encode() + b"\n",)

    def tail(self) -> bytes:
        return b"end\n"

    def error_frame(self, error: ThinkserveError) -> bytes:
        return b"E " + error.message.encode() + b"\n"


class LineReply:
    def __init__(self, thinking: bool) -> None:
        self._thinking = thinking

    def body(self, collected: Collected) -> dict[str, Any]:
        return {"thinking": self._thinking, "answer": collected.answer, "reason": collected.finished.reason}

    def stream_writer(self) -> LineStream:
        return LineStream()


class LineCall:
    def __init__(self, chat: ChatRequest) -> None:
        self._chat = chat

    @property
    def chat(self) -> ChatRequest:
        return self._chat

    def reply(self, decision: ThinkingDecision, request_id: str) -> LineReply:
        return LineReply(decision.thinking)


class LineDialect:
    """``{"q": "...", "stream": true}`` on qwen-plus (no thinking by default) -> one line per event."""

    def parse(self, body: bytes, headers: Headers) -> LineCall:
        raw = orjson.loads(body)
        messages = (Message("user", raw["q"]),)
        return LineCall(ChatRequest(model="qwen-plus", messages=messages, stream=raw["stream"]))

    def error_body(self, error: ThinkserveError, request_id: str) -> dict[str, Any]:
        return {"oops": error.message}


def _client() -> TestClient:
    app = app_with(FakeEngine(answer="Hi there."))
    dialect = LineDialect()

    async def endpoint(request: Request) -> Response:
        return await handler.handle(dialect, request)

    app.router.routes.append(Route("/lines", endpoint, methods=["POST"]))
    return TestClient(app)


def test_any_dialect_streams_through_the_generic_handler() -> None:
    auth = {"authorization": f"Bearer {API_KEY}"}
    with _client() as client:
        streamed = client.post("/lines", content=orjson.dumps({"q": "hi", "stream": True}), headers=auth)
        folded = client.post("/lines", content=orjson.dumps({"q": "hi", "stream": False}), headers=auth)
        refused = client.post("/lines", content=orjson.dumps({"q": "hi", "stream": True}))
    assert streamed.text == "begin\n" + "".join(f"A {c}\n" for c in "Hi there.") + "F stop\nend\n"
    assert folded.json() == {"thinking": False, "answer": "Hi there.", "reason": "stop"}
    assert refused.status_code == 401
    assert refused.json() == {"oops": "You didn't provide an API key. "}
