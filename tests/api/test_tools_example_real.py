"""Model Studio's function-calling example, unchanged (its two tools, ``tool_choice`` left to the
model, thinking on), on the real llama.cpp engine with the tiny Qwen3 model, which was trained to
write Qwen3's Hermes calls (``scripts/tiny_model_tools.py``). The loop is the example's: call, run
the tool, feed its result back, until the model answers in text. Through the official ``openai``
Python SDK (streamed and not), the ``dashscope`` SDK (streamed and not) and the ``openai`` Node SDK.

Also JSON mode without thinking, which must always parse: the grammar keeps the text valid JSON,
and the model (trained on small JSON answers) closes it.
"""

from __future__ import annotations

import json
from typing import Any

import dashscope
import openai
import pytest
from dashscope import Generation as _Generation

from tests.api.function_calling import TOOLS, get_current_weather, run_tool
from tests.api.test_node_sdk import run_node_example
from tests.api.test_tools_real import client, live
from tests.conftest import API_KEY, LiveServer

pytestmark = pytest.mark.slow
Generation: Any = _Generation
QUESTIONS = ("杭州天气怎么样", "What is the weather like in Hangzhou right now? Use the tool.")
ROUNDS = 3
"""Model calls a conversation may take before it must have answered in text."""
__all__ = ["live"]  # the fixture: the server as ``serve`` builds it, on the tiny model


def weather_arguments(name: str, arguments: str) -> dict[str, Any]:
    assert name == "get_current_weather"
    parsed = json.loads(arguments)
    assert isinstance(parsed, dict) and isinstance(parsed["location"], str) and parsed["location"]
    return parsed


@pytest.mark.parametrize("question", QUESTIONS)
def test_openai_example_non_streaming(live: LiveServer, question: str) -> None:
    c = client(live)
    messages: list[Any] = [{"role": "user", "content": question}]
    completion = c.chat.completions.create(
        model="qwen-plus", messages=messages, tools=TOOLS, extra_body={"enable_thinking": True}
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.reasoning_content  # type: ignore[attr-defined]
    (call,) = choice.message.tool_calls or ()
    weather_arguments(call.function.name, call.function.arguments)
    for _ in range(ROUNDS):
        calls = choice.message.tool_calls or ()
        if not calls:
            break
        messages.append(choice.message)
        for tool_call in calls:
            content = run_tool(tool_call.function.name, tool_call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": content})
        choice = (
            c.chat.completions.create(
                model="qwen-plus", messages=messages, tools=TOOLS, extra_body={"enable_thinking": True}
            )
        ).choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls, choice
    assert choice.message.content and choice.message.reasoning_content  # type: ignore[attr-defined]


def _streamed_turn(
    c: openai.OpenAI, messages: list[Any]
) -> tuple[str, str, str | None, list[dict[str, str]]]:
    reasoning = content = ""
    finish = None
    calls: dict[int, dict[str, str]] = {}
    for chunk in c.chat.completions.create(
        model="qwen-plus",
        messages=messages,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"enable_thinking": True},
    ):
        if not chunk.choices:
            assert chunk.usage is not None and chunk.usage.completion_tokens > 0
            continue
        delta = chunk.choices[0].delta
        finish = chunk.choices[0].finish_reason or finish
        reasoning += getattr(delta, "reasoning_content", None) or ""
        content += delta.content or ""
        for piece in delta.tool_calls or ():
            assert reasoning  # reasoning comes first
            entry = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += piece.id or ""
            entry["name"] += (piece.function.name or "") if piece.function else ""
            entry["arguments"] += (piece.function.arguments or "") if piece.function else ""
    return reasoning, content, finish, list(calls.values())


def test_openai_example_streamed(live: LiveServer) -> None:
    c = client(live)
    messages: list[Any] = [{"role": "user", "content": QUESTIONS[0]}]
    reasoning, content, finish, calls = _streamed_turn(c, messages)
    assert finish == "tool_calls" and reasoning and calls
    weather_arguments(calls[0]["name"], calls[0]["arguments"])
    for _ in range(ROUNDS):
        if not calls:
            break
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": reasoning,
                "tool_calls": [
                    {
                        "id": x["id"],
                        "type": "function",
                        "function": {"name": x["name"], "arguments": x["arguments"]},
                    }
                    for x in calls
                ],
            }
        )
        for x in calls:
            messages.append(
                {"role": "tool", "tool_call_id": x["id"], "content": run_tool(x["name"], x["arguments"])}
            )
        reasoning, content, finish, calls = _streamed_turn(c, messages)
    assert finish == "stop" and content and reasoning and not calls


def test_dashscope_example_non_streaming_and_streamed(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", live.dashscope_base)
    common = {"api_key": API_KEY, "model": "qwen-plus", "tools": TOOLS, "result_format": "message"}
    messages: list[Any] = [{"content": QUESTIONS[0], "role": "user"}]
    response = Generation.call(messages=messages, enable_thinking=True, **common)
    assert response.status_code == 200, response
    assert response.output.choices[0].finish_reason == "tool_calls"
    assistant_output = response.output.choices[0].message
    assert assistant_output.reasoning_content
    call = assistant_output.tool_calls[0]
    weather_arguments(call["function"]["name"], call["function"]["arguments"])

    streamed = {"name": "", "arguments": ""}
    reasoning = ""
    for part in Generation.call(
        messages=messages, enable_thinking=True, stream=True, incremental_output=True, **common
    ):
        assert part.status_code == 200, part
        message = part.output.choices[0].message
        reasoning += message.get("reasoning_content") or ""
        for piece in message.get("tool_calls") or ():
            streamed["name"] += piece["function"].get("name", "")
            streamed["arguments"] += piece["function"].get("arguments", "")
    assert reasoning
    weather_arguments(streamed["name"], streamed["arguments"])

    messages.append(assistant_output)
    for _ in range(ROUNDS):
        if "tool_calls" not in assistant_output:
            break
        call = assistant_output.tool_calls[0]
        arguments = json.loads(call["function"]["arguments"])
        messages.append(
            {"name": "get_current_weather", "role": "tool", "content": get_current_weather(arguments)}
        )
        response = Generation.call(messages=messages, enable_thinking=True, **common)
        assert response.status_code == 200, response
        assistant_output = response.output.choices[0].message
        messages.append(assistant_output)
    assert "tool_calls" not in assistant_output and assistant_output.content
    assert response.output.choices[0].finish_reason == "stop"


def test_node_sdk_runs_the_example_on_the_real_engine(live: LiveServer) -> None:
    """tests/node/function_calling.mjs: streamed, thinking on, the loop as the example writes it."""
    turns = run_node_example(live, "qwen-plus", "function_calling.mjs")
    first, last = turns[0], turns[-1]
    assert first["reasoning"] and first["finish"] == "tool_calls"
    call = first["toolCalls"][0]  # type: ignore[index]
    assert call["id"].startswith("call_")
    weather_arguments(call["function"]["name"], call["function"]["arguments"])
    assert 2 <= len(turns) <= ROUNDS + 1
    assert last["toolCalls"] == [] and last["finish"] == "stop" and last["content"] and last["reasoning"]


JSON_PROMPTS = (
    "What is 12 plus 7? Answer in JSON.",
    "Reply in JSON: who are you?",
    "Give the capital of France as JSON.",
    "Describe a cat in JSON.",
    "hello (json)",
)


@pytest.mark.parametrize("prompt", JSON_PROMPTS)
def test_json_mode_without_thinking_parses(live: LiveServer, prompt: str) -> None:
    for seed in range(3):
        response = client(live).chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": prompt}],
            response_format={"type": "json_object"},
            seed=seed,
            max_tokens=200,
        )
        choice = response.choices[0]
        assert choice.finish_reason == "stop", choice
        assert isinstance(json.loads(choice.message.content or ""), dict)
