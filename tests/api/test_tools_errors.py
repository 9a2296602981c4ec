"""Every bad tool definition, tool choice, history call or response format is a 400 in the
caller's dialect, never a 500 (and never silently ignored)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.dashscope_helpers import GENERATION
from tests.api.function_calling import TOOLS
from tests.conftest import API_KEY, LiveServer

WEATHER = TOOLS[1]
USER = [{"role": "user", "content": "杭州天气怎么样"}]


def fn(**function: Any) -> dict[str, Any]:
    return {"type": "function", "function": function}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no name", {"tools": [fn(parameters={})]}, "function.name is required"),
    ("empty name", {"tools": [fn(name="")]}, "function.name is required"),
    ("name not a string", {"tools": [fn(name=7)]}, "function.name is required"),
    ("name with a space", {"tools": [fn(name="get weather")]}, "letters, digits"),
    ("name too long", {"tools": [fn(name="x" * 65)]}, "letters, digits"),
    ("reserved name", {"tools": [fn(name="search")]}, "Tool names are not allowed to be [search]"),
    ("duplicate name", {"tools": [WEATHER, WEATHER]}, "used by another tool"),
    (
        "type not function",
        {"tools": [{"type": "retrieval", "function": {"name": "f"}}]},
        'type must be "function"',
    ),
    ("no function", {"tools": [{"type": "function"}]}, "function must be an object"),
    ("tool not an object", {"tools": ["get_current_weather"]}, ""),
    ("parameters a string", {"tools": [fn(name="f", parameters="object")]}, "must be a JSON Schema object"),
    ("parameters a list", {"tools": [fn(name="f", parameters=[])]}, "must be a JSON Schema object"),
    (
        "parameters not a schema",
        {"tools": [fn(name="f", parameters={"type": "bogus"})]},
        "not a valid JSON Schema",
    ),
    (
        "required not a list",
        {"tools": [fn(name="f", parameters={"type": "object", "required": "x"})]},
        "not a valid",
    ),
    ("description not a string", {"tools": [fn(name="f", description=3)]}, "description must be a string"),
    (
        "unknown function chosen",
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "not in tools",
    ),
    ("bad tool_choice", {"tools": TOOLS, "tool_choice": "always"}, "tool_choice must be"),
    ("required without tools", {"tool_choice": "required"}, "needs tools"),
    ("parallel not a bool", {"tools": TOOLS, "parallel_tool_calls": "yes"}, ""),
    ("json without the word", {"response_format": {"type": "json_object"}}, "must contain the word 'json'"),
    ("bad response_format type", {"response_format": {"type": "xml"}}, "response_format.type must be"),
    (
        "json_schema without schema",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "schema is required",
    ),
    (
        "json_schema bad schema",
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 5}}}},
        "not a valid JSON Schema",
    ),
    (
        "json with tools",
        {"tools": TOOLS, "response_format": {"type": "json_object"}},
        "cannot be used together with tools",
    ),
    ("unknown thinkserve option", {"thinkserve": {"nope": True}}, "Unknown thinkserve option"),
    (
        "json while thinking",
        {"response_format": {"type": "json_object"}, "enable_thinking": True},
        "Json mode response is not supported when enable_thinking is true",
    ),
]
HISTORY_BAD: list[tuple[str, list[dict[str, Any]], str]] = [
    (
        "call without a name",
        [
            *USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {}}],
            },
        ],
        "function.name is required",
    ),
    (
        "arguments not text",
        [
            *USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": 5}}],
            },
        ],
        "arguments must be a string",
    ),
    ("tool result without content", [*USER, {"role": "tool", "tool_call_id": "c"}], "must not be empty"),
    (
        "tool_call_id on a user turn",
        [{"role": "user", "content": "hi", "tool_call_id": "c"}],
        "only allowed on tool messages",
    ),
]


def openai_post(
    live: LiveServer, extra: dict[str, Any], messages: list[dict[str, Any]] = USER
) -> httpx.Response:
    body = {"model": "qwen-plus", "messages": messages, **extra}
    return httpx.post(
        f"{live.openai_base}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )


def native_post(
    live: LiveServer, extra: dict[str, Any], messages: list[dict[str, Any]] = USER
) -> httpx.Response:
    body = {
        "model": "qwen-plus",
        "input": {"messages": messages},
        "parameters": {"result_format": "message", **extra},
    }
    return httpx.post(
        live.base_url + GENERATION, json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    )


@pytest.mark.parametrize(("case", "extra", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_definitions_are_400_in_both_dialects(
    fake_server: LiveServer, case: str, extra: dict[str, Any], message: str
) -> None:
    r = openai_post(fake_server, extra)
    assert r.status_code == 400, (case, r.text)
    error = r.json()["error"]
    assert error["code"] == "invalid_parameter_error" and message in error["message"]
    r = native_post(fake_server, extra)
    assert r.status_code == 400, (case, r.text)
    assert r.json()["code"] == "InvalidParameter" and message in r.json()["message"]


@pytest.mark.parametrize(("case", "messages", "message"), HISTORY_BAD, ids=[b[0] for b in HISTORY_BAD])
def test_bad_history_is_400_in_both_dialects(
    fake_server: LiveServer, case: str, messages: list[dict[str, Any]], message: str
) -> None:
    for post in (openai_post, native_post):
        r = post(fake_server, {"tools": TOOLS}, messages)
        assert r.status_code == 400, (case, r.text)
        assert message in r.text


def test_good_definitions_pass(fake_server: LiveServer) -> None:
    ok = {"tools": [fn(name="no_args"), fn(name="a-b_9", description="d", parameters={"type": "object"})]}
    assert openai_post(fake_server, ok).status_code == 200
    assert native_post(fake_server, ok).status_code == 200
    json_mode = {"response_format": {"type": "json_object"}}
    assert (
        openai_post(fake_server, json_mode, [{"role": "user", "content": "Reply in JSON."}]).status_code
        == 200
    )
