"""Function calling through the official ``dashscope`` SDK: Model Studio's example (the weather
tool, then its result fed back), thinking on, streamed and not, over the scripted engine; and the
native stream's ``tool_calls`` shapes, incremental and cumulative."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import dashscope
import httpx
import pytest
from dashscope import Generation as _Generation

from tests.api.dashscope_helpers import GENERATION, parse_blocks
from tests.api.function_calling import TOOLS, get_current_weather
from tests.conftest import API_KEY, LiveServer

Generation: Any = _Generation


@pytest.fixture
def base(fake_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setattr(dashscope, "base_http_api_url", fake_server.dashscope_base)
    yield fake_server


def get_response(messages: list[Any], **extra: Any) -> Any:
    return Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=messages,
        tools=TOOLS,
        seed=random.randint(1, 10000),
        result_format="message",
        **extra,
    )


def test_example_non_streaming_with_thinking(base: LiveServer) -> None:
    messages: list[Any] = [{"content": "杭州天气怎么样", "role": "user"}]
    response = get_response(messages, enable_thinking=True)
    assert response.status_code == 200, response
    assert response.output.choices[0].finish_reason == "tool_calls"
    assistant_output = response.output.choices[0].message
    assert assistant_output.reasoning_content
    messages.append(assistant_output)
    rounds = 0
    while "tool_calls" in assistant_output:
        rounds += 1
        call = assistant_output.tool_calls[0]
        assert call["id"].startswith("call_") and call["type"] == "function" and call["index"] == 0
        assert call["function"]["name"] == "get_current_weather"
        tool_info = {"name": "get_current_weather", "role": "tool"}
        tool_info["content"] = get_current_weather(json.loads(call["function"]["arguments"]))
        messages.append(tool_info)
        response = get_response(messages, enable_thinking=True)
        assert response.status_code == 200, response
        assistant_output = response.output.choices[0].message
        messages.append(assistant_output)
    assert rounds == 1
    assert response.output.choices[0].finish_reason == "stop"
    assert assistant_output.content == "Hello! I am a helpful assistant."


def test_example_streamed_with_thinking(base: LiveServer) -> None:
    messages: list[Any] = [{"content": "杭州天气怎么样", "role": "user"}]
    responses = get_response(messages, enable_thinking=True, stream=True, incremental_output=True)
    reasoning = content = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for response in responses:
        assert response.status_code == 200, response
        choice = response.output.choices[0]
        finish = choice.finish_reason
        message = choice.message
        reasoning += message.reasoning_content
        content += message.content
        for tool_call in message.get("tool_calls") or ():
            entry = calls.setdefault(tool_call["index"], {"id": "", "name": "", "arguments": ""})
            entry["id"] += tool_call.get("id", "")
            entry["name"] += tool_call["function"].get("name", "")
            entry["arguments"] += tool_call["function"].get("arguments", "")
    assert reasoning and content == "" and finish == "tool_calls"
    (call,) = calls.values()
    assert call["name"] == "get_current_weather" and call["id"].startswith("call_")
    messages.append(
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        }
    )
    messages.append(
        {
            "role": "tool",
            "content": get_current_weather(json.loads(call["arguments"])),
            "tool_call_id": call["id"],
        }
    )
    answer = ""
    for response in get_response(messages, enable_thinking=True, stream=True, incremental_output=True):
        assert "tool_calls" not in response.output.choices[0].message
        answer += response.output.choices[0].message.content
        finish = response.output.choices[0].finish_reason
    assert answer == "Hello! I am a helpful assistant." and finish == "stop"


def post(live: LiveServer, parameters: dict[str, Any], *, sse: bool) -> httpx.Response:
    body = {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": "杭州天气怎么样"}]},
        "parameters": {"tools": TOOLS, **parameters},
    }
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if sse:
        headers["X-DashScope-SSE"] = "enable"
    return httpx.post(live.base_url + GENERATION, json=body, headers=headers, timeout=30)


def test_cumulative_stream_repeats_every_call_so_far(fake_server: LiveServer) -> None:
    """incremental_output false (thinking off): each block carries the calls whole so far."""
    blocks = parse_blocks(post(fake_server, {"incremental_output": False}, sse=True).content)
    with_calls = [b for b in blocks if "tool_calls" in b.data["output"]["choices"][0]["message"]]  # type: ignore[index]
    last = with_calls[-1].data["output"]["choices"][0]  # type: ignore[index]
    assert last["finish_reason"] == "tool_calls"
    (call,) = last["message"]["tool_calls"]
    assert call["function"] == {"name": "get_current_weather", "arguments": '{"location": "Hangzhou"}'}
    growing = [
        b.data["output"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        for b in with_calls
    ]  # type: ignore[index]
    assert all(a.startswith(b) for a, b in zip(growing[1:], growing, strict=False))


def test_incremental_stream_pieces_carry_index_and_empty_ids(fake_server: LiveServer) -> None:
    blocks = parse_blocks(post(fake_server, {"incremental_output": True}, sse=True).content)
    pieces = [
        b.data["output"]["choices"][0]["message"]["tool_calls"][0]  # type: ignore[index]
        for b in blocks
        if "tool_calls" in b.data["output"]["choices"][0]["message"]  # type: ignore[index]
    ]
    assert pieces[0]["id"].startswith("call_") and pieces[0]["function"]["name"] == "get_current_weather"
    assert all(p["index"] == 0 and p["type"] == "function" and p["id"] == "" for p in pieces[1:])
    assert "".join(p["function"]["arguments"] for p in pieces) == '{"location": "Hangzhou"}'
    assert blocks[-1].data["output"]["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]


def test_tools_answer_in_the_message_shape_by_default(fake_server: LiveServer) -> None:
    body = post(fake_server, {}, sse=False).json()
    assert (
        body["output"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_current_weather"
    )
    refused = post(fake_server, {"result_format": "text"}, sse=False)
    assert refused.status_code == 400 and refused.json()["code"] == "InvalidParameter"
