"""Raw HTTP: the exact SSE bytes, error bodies for every kind of bad input, disconnects."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import API_KEY, LiveServer
from thinkserve.engine.fake.engine import FakeEngine

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def post(live: LiveServer, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        f"{live.openai_base}/chat/completions",
        content=content,
        headers={**AUTH, "Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


def test_sse_bytes_match_the_seed(fake_server: LiveServer) -> None:
    resp = post(
        fake_server,
        {
            "model": "qwen-plus",
            "messages": [{"role": "user", "content": "你是誰"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "enable_thinking": True,
        },
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = resp.text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    datas = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    first, last, usage = datas[0], datas[-2], datas[-1]
    assert list(first) == ["choices", "object", "usage", "created", "system_fingerprint", "model", "id"]
    assert first["choices"] == [
        {
            "delta": {"content": None, "role": "assistant", "reasoning_content": ""},
            "index": 0,
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert datas[1]["choices"][0]["delta"] == {"content": None, "reasoning_content": "T"}
    assert last["choices"] == [
        {
            "finish_reason": "stop",
            "delta": {"content": "", "reasoning_content": None},
            "index": 0,
            "logprobs": None,
        }
    ]
    assert usage["choices"] == [] and usage["object"] == "chat.completion.chunk"
    assert set(usage["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "completion_tokens_details",
        "prompt_tokens_details",
    }
    assert len({d["id"] for d in datas}) == 1 and datas[0]["id"].startswith("chatcmpl-")
    answer = [
        d["choices"][0]["delta"] for d in datas[1:-2] if d["choices"][0]["delta"]["content"] is not None
    ]
    assert all(a["reasoning_content"] is None for a in answer)


def test_streaming_is_decided_by_the_body_not_accept(fake_server: LiveServer) -> None:
    resp = post(
        fake_server,
        {"model": "qwen-plus", "messages": [{"role": "user", "content": "x"}], "stream": True},
        {"Accept": "application/json"},
    )
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.text.endswith("data: [DONE]\n\n")


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    return dict(body["error"])


GOOD = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        ({**GOOD, "messages": []}, "messages"),
        ({**GOOD, "messages": "hi"}, "messages"),
        ({**GOOD, "messages": [{"role": "user", "content": ""}]}, "must not be empty"),
        ({**GOOD, "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        (
            {
                **GOOD,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            },
            "text input only",
        ),
        ({**GOOD, "temperature": "hot"}, "temperature"),
        ({**GOOD, "temperature": 2.0}, "Temperature should be in [0.0, 2.0)"),
        ({**GOOD, "top_p": 0}, "Range of top_p should be (0.0, 1.0]"),
        ({**GOOD, "max_tokens": 0}, "Range of max_tokens should be [1, 32768]"),
        ({**GOOD, "n": 5}, "Range of n should be [1, 4]"),
        ({**GOOD, "enable_thinking": "yes"}, "enable_thinking"),
        ({**GOOD, "thinking_budget": "50"}, "thinking_budget"),
        ({**GOOD, "stream": "true"}, "stream"),
        ({**GOOD, "tools": [{"type": "function", "function": {"name": "f g"}}]}, "tools[0].function.name"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ],
)
def test_bad_input_gets_400_in_openai_shape(fake_server: LiveServer, body: Any, fragment: str) -> None:
    error = _error(post(fake_server, body), 400, "invalid_parameter_error")
    assert fragment in error["message"]


def test_unknown_model_is_404(fake_server: LiveServer) -> None:
    error = _error(post(fake_server, {**GOOD, "model": "gpt-5"}), 404, "model_not_found")
    assert "gpt-5" in error["message"]


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer sk-wrong"}, {"Authorization": "Basic x"}, {}])
def test_bad_key_is_401(fake_server: LiveServer, headers: dict[str, str]) -> None:
    resp = httpx.post(f"{fake_server.openai_base}/chat/completions", json=GOOD, headers=headers)
    _error(resp, 401, "invalid_api_key")


def test_sdk_raises_authentication_error(fake_server: LiveServer) -> None:
    c = openai.OpenAI(api_key="sk-wrong", base_url=fake_server.openai_base, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="qwen-plus", messages=[{"role": "user", "content": "x"}])


def test_oversized_body_is_413(fake_server: LiveServer) -> None:
    huge = {**GOOD, "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]}
    _error(post(fake_server, huge), 413, "request_too_large")


def test_unknown_route_and_method_are_json(fake_server: LiveServer) -> None:
    _error(httpx.get(f"{fake_server.base_url}/compatible-mode/v1/nope", headers=AUTH), 404, "not_found")
    _error(httpx.get(f"{fake_server.openai_base}/chat/completions", headers=AUTH), 405, "method_not_allowed")


def test_models_lists_every_catalogue_name(fake_server: LiveServer) -> None:
    c = openai.OpenAI(api_key=API_KEY, base_url=fake_server.openai_base, max_retries=0)
    names = {m.id for m in c.models.list()}
    assert {"qwen-plus", "qwq-32b", "qwen3-0.6b", "deepseek-r1", "kimi-k2-thinking"} <= names
    card = httpx.get(f"{fake_server.openai_base}/models/qwq-plus", headers=AUTH).json()
    assert card["thinkserve"]["mode"] == "thinking_only"
    assert card["thinkserve"]["thinking"] == "native"
    for prefix in ("/v1", "/compatible-mode/v1"):
        assert httpx.get(f"{fake_server.base_url}{prefix}/models", headers=AUTH).status_code == 200


def test_overload_before_the_stream_is_503(fake_server: LiveServer, fake_engine: FakeEngine) -> None:
    fake_engine.max_queue = 0
    _error(post(fake_server, GOOD), 503, "service_unavailable")


def test_client_disconnect_cancels_the_sequence(fake_server: LiveServer, fake_engine: FakeEngine) -> None:
    fake_engine.delay = 0.05
    body = orjson.dumps({**GOOD, "enable_thinking": True})
    host, port = fake_server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /compatible-mode/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\n"
            + f"Authorization: Bearer {API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert b"200 OK" in sock.recv(4096)
    deadline = time.monotonic() + 5
    while fake_engine.stats.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_engine.stats.cancelled == 1
    assert fake_engine.stats.active == 0


# Hostile values that used to be accepted (1e300 reached the C sampler as inf; 500k stop strings
# stalled the event loop), each with the message that now refuses it.
OUT_OF_RANGE = [
    ({"repetition_penalty": 1e300}, "repetition_penalty", "Repetition_penalty should be in (0.0, 2.0]"),
    ({"repetition_penalty": 2.5}, "repetition_penalty", "Repetition_penalty should be in (0.0, 2.0]"),
    ({"repetition_penalty": 0}, "repetition_penalty", "Repetition_penalty should be greater than 0.0"),
    ({"presence_penalty": -1e300}, "presence_penalty", "Presence_penalty should be in [-2.0, 2.0]"),
    ({"temperature": 1e300}, "temperature", "Temperature should be in [0.0, 2.0)"),
    ({"temperature": -1e-300}, "temperature", "Temperature should be in [0.0, 2.0)"),
    ({"top_p": 1e300}, "top_p", "Range of top_p should be (0.0, 1.0]"),
    ({"top_k": -1}, "top_k", "top_k be greater than or equal to 0"),
    ({"seed": -1}, "seed", "Range of seed should be [0, 9223372036854775807]"),
    ({"seed": 2**64 - 1}, "seed", "Range of seed should be [0, 9223372036854775807]"),
    ({"stop": ["s"] * 17}, "stop", "The stop parameter must have at most 16 strings"),
    ({"stop": ["s"] * 500_000}, "stop", "The stop parameter must have at most 16 strings"),
    ({"stop": "s" * 257}, "stop", "Each string of the stop parameter must be at most 256 characters"),
    ({"stop": ["ok", "s" * 257]}, "stop", "Each string of the stop parameter must be at most 256 characters"),
]


@pytest.mark.parametrize(("extra", "param", "fragment"), OUT_OF_RANGE)
def test_out_of_range_parameters_get_400_in_openai_shape(
    fake_server: LiveServer, fake_engine: FakeEngine, extra: dict[str, Any], param: str, fragment: str
) -> None:
    error = _error(post(fake_server, {**GOOD, **extra}), 400, "invalid_parameter_error")
    assert fragment in error["message"]
    assert error["param"] == param
    assert fake_engine.stats.submitted == 0


def test_parameters_at_their_bounds_are_served(fake_server: LiveServer) -> None:
    body = {
        **GOOD,
        "stream": False,
        "repetition_penalty": 2.0,
        "presence_penalty": -2.0,
        "temperature": 1.99,
        "top_p": 1.0,
        "top_k": 2**64 - 1,  # above 100: top-k off, as Model Studio does
        "seed": 2**63 - 1,
        "stop": ["s" * 256] + [f"never said {i}" for i in range(15)],
    }
    resp = post(fake_server, body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_workspace_header_longer_than_the_store_keeps_is_400(fake_server: LiveServer) -> None:
    error = _error(
        post(fake_server, GOOD, {"X-DashScope-WorkSpace": "w" * 201}), 400, "invalid_parameter_error"
    )
    assert error["param"] == "X-DashScope-WorkSpace"
    assert "at most 200 characters" in error["message"]
    assert post(fake_server, GOOD, {"X-DashScope-WorkSpace": "w" * 200}).status_code == 200
    # The HTTP parser lets a tab through; the store is given no control characters either.
    error = _error(post(fake_server, GOOD, {"X-DashScope-WorkSpace": "a\tb"}), 400, "invalid_parameter_error")
    assert "control characters" in error["message"]
