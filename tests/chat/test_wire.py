"""Both wire formats, parsed from streams written as the servers write them (httpx MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from thinkserve.chat.dashscope_wire import DashScopeWire, native_base
from thinkserve.chat.events import Answer, Call, ChatError, Event, Finished, Reasoning, Tokens
from thinkserve.chat.openai_wire import OpenAIWire

CALL = Call("qwen3-8b", ({"role": "user", "content": "hi"},), enable_thinking=True, thinking_budget=7)
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def sse(body: str, status: int = 200) -> Handler:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body.encode(), headers={"content-type": "text/event-stream"})

    handle.seen = seen  # type: ignore[attr-defined]
    return handle


def openai_chunk(**delta: Any) -> str:
    return "data: " + json.dumps({"id": "chatcmpl-1", "choices": [{"delta": delta, "finish_reason": None}]})


OPENAI_STREAM = "\n\n".join(
    [
        openai_chunk(role="assistant", content=None, reasoning_content="12 and 7"),
        openai_chunk(content=None, reasoning_content=" make 19."),
        openai_chunk(content="19", reasoning_content=None),
        "data: " + json.dumps({"id": "chatcmpl-1", "choices": [{"delta": {}, "finish_reason": "stop"}]}),
        "data: "
        + json.dumps(
            {
                "id": "chatcmpl-1",
                "choices": [],
                "usage": {
                    "prompt_tokens": 18,
                    "completion_tokens": 40,
                    "total_tokens": 58,
                    "completion_tokens_details": {"reasoning_tokens": 31},
                    "prompt_tokens_details": {"cached_tokens": 16},
                },
            }
        ),
        "data: [DONE]",
        "",
    ]
)


def test_openai_stream_request_and_events() -> None:
    handler = sse(OPENAI_STREAM)
    with client(handler) as c:
        events = list(OpenAIWire(c, "http://h/compatible-mode/v1/", "sk-x").stream(CALL))
    assert events == [
        Reasoning("12 and 7"),
        Reasoning(" make 19."),
        Answer("19"),
        Finished(Tokens(prompt=18, cached=16, output=40, reasoning=31), "stop", "chatcmpl-1"),
    ]
    request = handler.seen[0]  # type: ignore[attr-defined]
    assert str(request.url) == "http://h/compatible-mode/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-x"
    body = json.loads(request.content)
    assert body == {
        "model": "qwen3-8b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "enable_thinking": True,
        "thinking_budget": 7,
    }


def test_openai_leaves_unset_switches_to_the_model() -> None:
    body = OpenAIWire(httpx.Client(), "http://h/v1", None).body(Call("m", ()))
    assert "enable_thinking" not in body and "thinking_budget" not in body


def test_openai_refusal_and_error_after_the_stream_started() -> None:
    refusal = json.dumps(
        {"error": {"message": "Incorrect API key provided.", "type": "x", "code": "invalid_api_key"}}
    )
    with client(sse(refusal, 401)) as c, pytest.raises(ChatError) as caught:
        list(OpenAIWire(c, "http://h/v1", "bad").stream(CALL))
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
    assert str(caught.value) == "HTTP 401 invalid_api_key: Incorrect API key provided."

    broken = (
        openai_chunk(reasoning_content="thinking") + "\n\n" + 'data: {"error": {"message": "stopped"}}\n\n'
    )
    seen: list[Event] = []
    with client(sse(broken)) as c, pytest.raises(ChatError, match="stopped"):
        seen.extend(OpenAIWire(c, "http://h/v1", "k").stream(CALL))
    assert seen == [Reasoning("thinking")]


def native_block(n: int, reasoning: str, content: str, finish: str, output: int) -> str:
    data = {
        "output": {
            "choices": [
                {
                    "message": {"content": content, "reasoning_content": reasoning, "role": "assistant"},
                    "finish_reason": finish,
                }
            ]
        },
        "usage": {
            "total_tokens": 11 + output,
            "input_tokens": 11,
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": min(output, 2)},
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        "request_id": "2ce91085",
    }
    return f"id:{n}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(data, ensure_ascii=False)}\n\n"


def test_native_stream_request_and_events() -> None:
    stream = (
        native_block(1, "好的", "", "null", 1)
        + native_block(2, "，想想", "", "null", 2)
        + native_block(3, "", "19", "null", 3)
        + native_block(4, "", "", "stop", 3)
    )
    handler = sse(stream)
    with client(handler) as c:
        events = list(DashScopeWire(c, "http://h/api/v1/", "sk-x").stream(CALL))
    assert events == [
        Reasoning("好的"),
        Reasoning("，想想"),
        Answer("19"),
        Finished(Tokens(prompt=11, cached=0, output=3, reasoning=2), "stop", "2ce91085"),
    ]
    request = handler.seen[0]  # type: ignore[attr-defined]
    assert str(request.url) == "http://h/api/v1/services/aigc/text-generation/generation"
    assert request.headers["x-dashscope-sse"] == "enable"
    assert json.loads(request.content) == {
        "model": "qwen3-8b",
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "parameters": {
            "result_format": "message",
            "incremental_output": True,
            "enable_thinking": True,
            "thinking_budget": 7,
        },
    }


def test_native_errors() -> None:
    refusal = json.dumps({"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "r"})
    with client(sse(refusal, 401)) as c, pytest.raises(ChatError) as caught:
        list(DashScopeWire(c, "http://h/api/v1", "bad").stream(CALL))
    assert (caught.value.status, caught.value.code) == (401, "InvalidApiKey")

    broken = native_block(1, "hm", "", "null", 1) + (
        'id:2\nevent:error\n:HTTP_STATUS/500\ndata:{"code":"InternalError","message":"engine stopped"}\n\n'
    )
    with client(sse(broken)) as c, pytest.raises(ChatError, match="engine stopped"):
        list(DashScopeWire(c, "http://h/api/v1", "k").stream(CALL))


@pytest.mark.parametrize(
    ("given", "native"),
    [
        ("http://h:8000/compatible-mode/v1", "http://h:8000/api/v1"),
        ("http://h:8000/compatible-mode/v1/", "http://h:8000/api/v1"),
        ("http://h:8000/api/v1/", "http://h:8000/api/v1"),
        ("http://h:8000/v1", "http://h:8000/api/v1"),
    ],
)
def test_native_base_accepts_the_openai_sdks_url(given: str, native: str) -> None:
    assert native_base(given) == native
