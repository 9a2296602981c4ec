"""Function calling through the official ``openai`` SDK: Model Studio's example (the weather tool,
then its result fed back), thinking on, streamed and not, over the scripted engine."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.api.function_calling import TOOLS, run_tool
from tests.conftest import API_KEY, LiveServer


def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)


def test_example_non_streaming_with_thinking(fake_server: LiveServer) -> None:
    """The guide's loop: call, run the tool, send the result back until no call is left."""
    c = client(fake_server)

    def get_response(messages: list[Any]) -> Any:
        return c.chat.completions.create(
            model="qwen-plus", messages=messages, tools=TOOLS, extra_body={"enable_thinking": True}
        )

    messages: list[Any] = [{"role": "user", "content": "杭州天气怎么样"}]
    response = get_response(messages)
    assistant_output = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert assistant_output.reasoning_content  # type: ignore[attr-defined]
    assert assistant_output.content == ""
    if assistant_output.content is None:
        assistant_output.content = ""
    messages.append(assistant_output)
    rounds = 0
    while assistant_output.tool_calls is not None:
        rounds += 1
        tool_call = assistant_output.tool_calls[0]
        assert tool_call.type == "function" and tool_call.id.startswith("call_")
        assert tool_call.function.name == "get_current_weather"
        assert json.loads(tool_call.function.arguments) == {"location": "Hangzhou"}
        tool_result = run_tool(tool_call.function.name, tool_call.function.arguments)
        messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": tool_result})
        response = get_response(messages)
        assistant_output = response.choices[0].message
        if assistant_output.content is None:
            assistant_output.content = ""
        messages.append(assistant_output)
    assert rounds == 1
    assert response.choices[0].finish_reason == "stop"
    assert assistant_output.content == "Hello! I am a helpful assistant."


def stream_turn(c: openai.OpenAI, messages: list[Any]) -> tuple[str, str, dict[int, dict[str, str]], Any]:
    """One streamed turn, read as the guide's streaming example does (arguments joined per index)."""
    completion = c.chat.completions.create(
        model="qwen-plus",
        messages=messages,
        tools=TOOLS,
        extra_body={"enable_thinking": True},
        stream=True,
        stream_options={"include_usage": True},
    )
    reasoning = content = ""
    calls: dict[int, dict[str, str]] = {}
    finish = usage = None
    order: list[str] = []
    for chunk in completion:
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        finish = chunk.choices[0].finish_reason or finish
        if getattr(delta, "reasoning_content", None):
            reasoning += delta.reasoning_content  # type: ignore[attr-defined]
            order.append("reasoning")
        if delta.content:
            content += delta.content
        for tool_call in delta.tool_calls or ():
            order.append("tool")
            entry = calls.setdefault(tool_call.index, {"id": "", "name": "", "arguments": ""})
            assert tool_call.type == "function"
            entry["id"] += tool_call.id or ""
            if tool_call.function and tool_call.function.name:
                entry["name"] += tool_call.function.name
            if tool_call.function and tool_call.function.arguments:
                entry["arguments"] += tool_call.function.arguments
    if calls:
        # Reasoning first, then the call.
        assert order.index("tool") > max(i for i, kind in enumerate(order) if kind == "reasoning")
    return reasoning, content, calls, (finish, usage)


def test_example_streamed_with_thinking(fake_server: LiveServer) -> None:
    c = client(fake_server)
    messages: list[Any] = [{"role": "user", "content": "杭州天气怎么样"}]
    reasoning, content, calls, (finish, usage) = stream_turn(c, messages)
    assert reasoning and content == "" and finish == "tool_calls"
    assert usage.completion_tokens_details.reasoning_tokens > 0
    (call,) = calls.values()
    assert call["name"] == "get_current_weather" and call["id"].startswith("call_")
    assert json.loads(call["arguments"]) == {"location": "Hangzhou"}
    messages.append(
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
        }
    )
    messages.append(
        {"role": "tool", "tool_call_id": call["id"], "content": run_tool(call["name"], call["arguments"])}
    )
    reasoning, content, calls, (finish, _) = stream_turn(c, messages)
    assert not calls and finish == "stop" and content == "Hello! I am a helpful assistant."


def test_the_tool_result_reaches_the_prompt(fake_server: LiveServer, fake_engine: Any) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "杭州天气怎么样"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location": "杭州"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "杭州今天是晴天。"},
    ]
    client(fake_server).chat.completions.create(model="qwen-plus", messages=messages, tools=TOOLS)
    prompt = fake_engine.tokenizer.decode(fake_engine.stats.prompts[-1])
    assert '<tools>\n{"type": "function", "function": {"name": "get_current_time"' in prompt
    assert (
        '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "杭州"}}\n</tool_call>'
        in prompt
    )
    assert "<tool_response>\n杭州今天是晴天。\n</tool_response>" in prompt


def test_tool_choice_none_answers_in_text(fake_server: LiveServer) -> None:
    response = client(fake_server).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "杭州天气怎么样"}],
        tools=TOOLS,
        tool_choice="none",
    )
    assert response.choices[0].message.tool_calls is None
    assert response.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_current_weather"}}]
)
def test_forced_calls_are_refused_while_thinking_as_model_studio_does(
    fake_server: LiveServer, choice: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(fake_server).chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "杭州天气怎么样"}],
            tools=TOOLS,
            tool_choice=choice,
            extra_body={"enable_thinking": True},
        )
    assert "does not support being set to required or object in thinking mode" in str(info.value)


def test_forced_calls_while_thinking_with_our_option(fake_server: LiveServer) -> None:
    response = client(fake_server).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "杭州天气怎么样"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_current_weather"}},
        extra_body={"enable_thinking": True, "thinkserve": {"constrain_after_thinking": True}},
    )
    assert response.choices[0].finish_reason == "tool_calls"


def test_dated_snapshot_names_resolve_to_their_family(fake_server: LiveServer) -> None:
    c = client(fake_server)
    for name in ("qwen-plus-2025-07-14", "qwen-plus-2025-09-11", "qwen-flash-2025-09-01"):
        response = c.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert response.model == name
    for name in (
        "qwen-plus-2024-01-01",
        "qwen-plus-2025-13-01",
        "qwq-plus-2026-01-01",
        "qwen-pluss-2025-07-14",
    ):
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
