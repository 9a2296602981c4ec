"""Forced function calls and JSON schemas on the real llama.cpp engine, run in its own supervised
process (so the grammar crosses the engine's wire as data), with the tiny Qwen3 test model. (Model
Studio's example left to the model's own choice is ``test_tools_example_real.py``.)

The first turn forces the weather call: with thinking on that takes thinkserve's
``constrain_after_thinking`` (Model Studio refuses forced calls while thinking); the model thinks
freely, then writes the call under the grammar. The tool's result is then fed back without
``tool_choice``, and the model answers.

The weather tool's ``location`` has a ``maxLength`` here, and the JSON schemas bound their strings:
the grammar makes any string valid JSON, but only the model decides when to close one, and these
tests hold the grammar's bounds, whatever the model would write.

``test_auto_choice_calls_follow_the_schema`` leaves the choice to the model (``tool_choice`` auto):
the tiny model writes its own Hermes call, and the lazy grammar holds it to the tool's schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import dashscope
import jsonschema
import openai
import pytest
from dashscope import Generation as _Generation

from tests.api.function_calling import TOOLS as EXAMPLE_TOOLS
from tests.api.function_calling import get_current_weather, run_tool
from tests.conftest import API_KEY, TINY_MODEL, LiveServer, serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.platform.static_keys import StaticKeys

pytestmark = pytest.mark.slow
TOOLS = copy.deepcopy(EXAMPLE_TOOLS)
TOOLS[1]["function"]["parameters"]["properties"]["location"]["maxLength"] = 16
Generation: Any = _Generation
WEATHER = {"type": "function", "function": {"name": "get_current_weather"}}
# Short reasoning and answers: the tests run on 2 shared cores.
THINK = {"enable_thinking": True, "thinking_budget": 24}
FORCE_WHILE_THINKING = {**THINK, "thinkserve": {"constrain_after_thinking": True}}
LIMIT = 160


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The server as ``serve`` builds it: the engine in its own process, started by the app."""
    from thinkserve.engine.llamacpp.settings import LlamaCppSettings

    engine = LlamaCppSettings("default", model=str(TINY_MODEL), n_ctx=4096, n_seq=4, own_process=True)
    settings = Settings(
        api_keys=(API_KEY,), engines={"default": engine}, data_dir=tmp_path_factory.mktemp("data")
    )
    server, running = serve(create_app(settings, gate=StaticKeys(settings.api_keys)))
    try:
        yield server
    finally:
        stop(running)


def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)


def check_weather_call(name: str, arguments: str) -> None:
    assert name == "get_current_weather"
    jsonschema.validate(json.loads(arguments), TOOLS[1]["function"]["parameters"])


def test_openai_example_non_streaming_thinking(live: LiveServer) -> None:
    seed = 1
    c = client(live)
    messages: list[Any] = [
        {"role": "user", "content": "What is the weather like in Hangzhou right now? Use the tool."}
    ]
    response = c.chat.completions.create(
        model="qwen-plus",
        messages=messages,
        tools=TOOLS,
        tool_choice=WEATHER,
        seed=seed,
        max_tokens=LIMIT,
        extra_body=FORCE_WHILE_THINKING,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.reasoning_content  # type: ignore[attr-defined]
    (call,) = choice.message.tool_calls or ()
    check_weather_call(call.function.name, call.function.arguments)
    messages.append(choice.message)
    messages.append(
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": run_tool(call.function.name, call.function.arguments),
        }
    )
    response = c.chat.completions.create(
        model="qwen-plus", messages=messages, tools=TOOLS, seed=seed, max_tokens=LIMIT, extra_body=THINK
    )
    assert response.choices[0].finish_reason in ("stop", "tool_calls", "length")
    assert response.usage is not None and response.usage.completion_tokens > 0


def test_openai_example_streamed_thinking(live: LiveServer) -> None:
    c = client(live)
    messages: list[Any] = [
        {"role": "user", "content": "What is the weather like in Hangzhou right now? Use the tool."}
    ]
    stream = c.chat.completions.create(
        model="qwen-plus",
        messages=messages,
        tools=TOOLS,
        tool_choice=WEATHER,
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=LIMIT,
        extra_body=FORCE_WHILE_THINKING,
    )
    reasoning = ""
    calls: dict[int, dict[str, str]] = {}
    finish = usage = None
    for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        finish = chunk.choices[0].finish_reason or finish
        reasoning += getattr(delta, "reasoning_content", None) or ""
        for piece in delta.tool_calls or ():
            entry = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            if calls[piece.index]["arguments"] or entry["name"]:
                assert reasoning  # reasoning came first
            entry["id"] += piece.id or ""
            entry["name"] += (piece.function.name or "") if piece.function else ""
            entry["arguments"] += (piece.function.arguments or "") if piece.function else ""
    assert finish == "tool_calls" and reasoning
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens > 0
    (call,) = calls.values()
    check_weather_call(call["name"], call["arguments"])
    messages += [
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": reasoning,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": run_tool(call["name"], call["arguments"])},
    ]
    answer = ""
    for chunk in c.chat.completions.create(
        model="qwen-plus", messages=messages, tools=TOOLS, stream=True, max_tokens=LIMIT, extra_body=THINK
    ):
        if chunk.choices:
            answer += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert finish in ("stop", "tool_calls", "length")


def test_dashscope_example_streamed_and_not_thinking(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", live.dashscope_base)
    messages: list[Any] = [
        {"role": "user", "content": "What is the weather like in Hangzhou right now? Use the tool."}
    ]
    common = {
        "api_key": API_KEY,
        "model": "qwen-plus",
        "tools": TOOLS,
        "result_format": "message",
        "max_tokens": LIMIT,
        **THINK,
    }
    response = Generation.call(
        messages=messages, tool_choice=WEATHER, thinkserve={"constrain_after_thinking": True}, **common
    )
    assert response.status_code == 200, response
    message = response.output.choices[0].message
    assert response.output.choices[0].finish_reason == "tool_calls" and message.reasoning_content
    call = message.tool_calls[0]
    check_weather_call(call["function"]["name"], call["function"]["arguments"])
    streamed: dict[str, str] = {"name": "", "arguments": ""}
    for part in Generation.call(
        messages=messages, tool_choice=WEATHER, thinkserve={"constrain_after_thinking": True},
        stream=True, incremental_output=True, **common,
    ):  # fmt: skip
        assert part.status_code == 200, part
        for piece in part.output.choices[0].message.get("tool_calls") or ():
            streamed["name"] += piece["function"].get("name", "")
            streamed["arguments"] += piece["function"].get("arguments", "")
    check_weather_call(streamed["name"], streamed["arguments"])
    messages.append(message)
    messages.append(
        {
            "role": "tool",
            "name": "get_current_weather",
            "content": get_current_weather(json.loads(call["function"]["arguments"])),
        }
    )
    response = Generation.call(messages=messages, **common)
    assert response.status_code == 200, response
    assert response.usage.output_tokens > 0


def test_forced_call_without_thinking(live: LiveServer) -> None:
    response = client(live).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "hello"}],
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=True,
        temperature=0,
        max_tokens=4 * LIMIT,
    )
    calls = response.choices[0].message.tool_calls or []
    assert response.choices[0].finish_reason == "tool_calls" and calls
    for call in calls:
        assert call.function.name in ("get_current_time", "get_current_weather")
        json.loads(call.function.arguments)


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "celsius": {"type": "integer"},
    },
    "required": ["city", "celsius"],
    "additionalProperties": False,
}


def test_json_schema_answers_follow_the_schema(live: LiveServer) -> None:
    seed = 1
    response = client(live).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "The weather in Hangzhou?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}},
        seed=seed,
        max_tokens=512,
    )
    assert response.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(response.choices[0].message.content or ""), SCHEMA)


def test_json_after_free_thinking_with_our_option(live: LiveServer) -> None:
    response = client(live).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "The weather in Hangzhou, in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}},
        max_tokens=512,
        temperature=0,
        extra_body=FORCE_WHILE_THINKING,
    )
    message = response.choices[0].message
    assert message.reasoning_content  # type: ignore[attr-defined]
    jsonschema.validate(json.loads(message.content or ""), SCHEMA)


# The example's weather tool with a required enum: a model that writes the call it learned
# ({"location": ...}) or the parameters' schema as its arguments breaks it; under auto choice the
# lazy grammar makes the call it begins an instance of the schema.
ENUM_TOOLS = copy.deepcopy(TOOLS)
ENUM_WEATHER = ENUM_TOOLS[1]["function"]["parameters"]
ENUM_WEATHER["properties"]["unit"] = {"type": "string", "enum": ["celsius", "fahrenheit"]}
ENUM_WEATHER["required"] = ["location", "unit"]


def test_auto_choice_calls_follow_the_schema(live: LiveServer) -> None:
    """``tool_choice`` auto (the default): the model decides to call after its reasoning (the
    tiny model is trained to when asked to use a tool); the call it writes is then held to the
    tool's schema (``tests/engine/test_lazy_grammar.py`` checks the same whatever the model)."""
    response = client(live).chat.completions.create(
        model="qwen-plus",
        messages=[
            {"role": "user", "content": "What is the weather like in Hangzhou right now? Use the tool."}
        ],
        tools=ENUM_TOOLS,
        temperature=0,
        max_tokens=LIMIT,
        extra_body=THINK,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.reasoning_content  # type: ignore[attr-defined]
    (call,) = choice.message.tool_calls or ()
    assert call.function.name == "get_current_weather", call
    jsonschema.validate(json.loads(call.function.arguments), ENUM_WEATHER)
