"""The default model (Qwen2.5-Coder-1.5B, prompted thinking) with tools and JSON mode: it knows
Hermes tool calls from training, so with ``tool_choice`` auto it calls the weather tool when asked
to, after its reasoning; and JSON mode parses.

Left to itself this 1.5B model picks the right tool but often copies the parameters' schema as
its arguments (a known small-model failure); under ``tool_choice`` auto the lazy grammar holds the
call it begins with ``<tool_call>`` to the schema, so the arguments validate, as a forced call's
do. After the result it may call again rather than answer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import openai
import pytest

from tests.api.function_calling import TOOLS
from tests.conftest import API_KEY, LiveServer, app_with, serve, stop
from thinkserve.config import default_data_dir
from thinkserve.default_model import default_model_path

pytestmark = [pytest.mark.slow, pytest.mark.default_model]
QUESTION = "What is the weather like in Hangzhou right now? Use the tool."


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    from thinkserve.engine.llamacpp.engine import LlamaCppEngine

    path = default_model_path(default_data_dir(), show_progress=False)
    engine = LlamaCppEngine(str(path), n_ctx=4096, n_seq=2)
    engine.start()
    server, running = serve(app_with(engine))
    try:
        yield server
    finally:
        stop(running)
        engine.close()


def test_calls_the_weather_tool_while_thinking_then_answers(live: LiveServer) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
    messages: list[object] = [{"role": "user", "content": QUESTION}]
    response = client.chat.completions.create(
        model="qwen-plus",
        messages=messages,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        extra_body={"enable_thinking": True},
        temperature=0,
        max_tokens=400,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.reasoning_content  # type: ignore[attr-defined]
    (call,) = choice.message.tool_calls or ()
    assert call.function.name == "get_current_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, TOOLS[1]["function"]["parameters"])
    assert "hangzhou" in arguments["location"].lower(), arguments
    messages += [
        choice.message,
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": "Hangzhou: sunny, 24 °C.",
        },
    ]
    response = client.chat.completions.create(
        model="qwen-plus",
        messages=messages,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        extra_body={"enable_thinking": True},
        temperature=0,
        max_tokens=400,
    )
    # After the result it should answer; this 1.5B model sometimes calls the tool again instead.
    assert response.choices[0].finish_reason in ("stop", "tool_calls")
    assert response.usage is not None and response.usage.completion_tokens > 0


def test_forced_weather_call_has_arguments_of_the_schemas_shape(live: LiveServer) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
    response = client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": QUESTION}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_current_weather"}},
        temperature=0,
        max_tokens=100,
    )
    (call,) = response.choices[0].message.tool_calls or ()
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, TOOLS[1]["function"]["parameters"])
    assert "hangzhou" in arguments["location"].lower()


@pytest.mark.parametrize("prompt", ["Describe a cat in JSON.", "Give the capital of France as JSON."])
def test_json_mode_parses(live: LiveServer, prompt: str) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
    response = client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_object"},
        max_tokens=300,
    )
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content or ""), dict)
