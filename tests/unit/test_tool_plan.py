"""What a request's tools do to its generation (``service.tooling``): under ``tool_choice`` auto a
lazy grammar whose trigger is the family's call marker, past ``</think>`` while thinking; forced
calls constrain from the answer's start; a schema the converter cannot enforce leaves auto mode
unconstrained instead of refusing it. Over the fake tokenizer, with ``</think>`` a token or text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ChatRequest, Message, ToolChoice, ToolSpec
from thinkserve.engine.fake.tokenizer import FAKE_TEMPLATE, FakeTokenizer
from thinkserve.service import tooling
from thinkserve.thinking.chat_format import ChatFormat
from thinkserve.thinking.parser import THINK_END, THINK_START

WEATHER = ToolSpec(
    "get_current_weather",
    None,
    json.dumps({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}),
)
# A valid schema llama-cpp-python's converter cannot turn into a grammar (a $ref it cannot follow).
ODD = ToolSpec("odd", None, json.dumps({"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}}))


class TextThinkTokenizer(FakeTokenizer):
    """A tokenizer with no ``</think>`` token (Qwen2.5's, the prompted default model's)."""

    def token_id(self, text: str) -> int | None:
        return None if text in (THINK_START, THINK_END) else super().token_id(text)


NATIVE = ChatFormat(FakeTokenizer())
TEXT_THINK = ChatFormat(TextThinkTokenizer())


AUTO = ToolChoice()


def request(*tools: ToolSpec, choice: ToolChoice = AUTO, parallel: bool = False) -> ChatRequest:
    return ChatRequest(
        "qwen-plus",
        (Message("user", "Weather in Hangzhou?"),),
        stream=False,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
    )


@pytest.mark.parametrize("parallel", [False, True])
def test_auto_choice_plans_a_grammar_triggered_by_the_call_marker(parallel: bool) -> None:
    planned = tooling.plan_tools(request(WEATHER, parallel=parallel), NATIVE)
    assert planned.trigger == "<tool_call>" and planned.grammar is not None
    assert "get_current_weather" in planned.grammar and planned.parallel is parallel
    # A Hermes call written bare fires it too.
    assert planned.start_pattern is not None
    assert re.match(planned.start_pattern, '\n{"name": "get_current_weather"')


def test_only_hermes_calls_are_read_bare() -> None:
    chat = ChatFormat(FakeTokenizer(template=FAKE_TEMPLATE + "{# <｜tool▁call▁begin｜> #}"))
    planned = tooling.plan_tools(request(WEATHER), chat)
    assert planned.trigger == "<｜tool▁call▁begin｜>" and planned.start_pattern is None


def test_the_trigger_waits_for_the_end_of_reasoning() -> None:
    planned = tooling.plan_tools(request(WEATHER), NATIVE)
    native = tooling.constraint(planned, NATIVE, thinking=True)
    assert native is not None and native.trigger == "<tool_call>" and native.start_pattern
    assert native.after_token == NATIVE.end_id is not None
    by_text = tooling.constraint(planned, TEXT_THINK, thinking=True)
    assert by_text is not None and by_text.after_text == THINK_END and by_text.trigger == "<tool_call>"
    answer_only = tooling.constraint(planned, NATIVE, thinking=False)
    assert answer_only is not None and answer_only.immediate and answer_only.trigger == "<tool_call>"


def test_forced_calls_have_no_trigger() -> None:
    planned = tooling.plan_tools(request(WEATHER, choice=ToolChoice("required")), NATIVE)
    assert planned.trigger is None and planned.grammar is not None
    constraint = tooling.constraint(planned, NATIVE, thinking=False)
    assert constraint is not None and constraint.trigger is None and constraint.immediate


def test_a_schema_the_converter_cannot_enforce_leaves_auto_mode_free() -> None:
    planned = tooling.plan_tools(request(WEATHER, ODD), NATIVE)
    assert planned.grammar is None and planned.trigger is None and planned.fmt is not None
    assert tooling.constraint(planned, NATIVE, thinking=True) is None
    with pytest.raises(InvalidParameter):
        tooling.plan_tools(request(WEATHER, ODD, choice=ToolChoice("required")), NATIVE)


def test_no_tools_or_choice_none_plan_nothing() -> None:
    assert tooling.plan_tools(request(), NATIVE).grammar is None
    assert tooling.plan_tools(request(WEATHER, choice=ToolChoice("none")), NATIVE).grammar is None


@dataclass(frozen=True)
class Builtin:
    spec: ToolSpec
    offered: bool

    async def run(self, arguments: str) -> Any:
        raise NotImplementedError


SEARCH = ToolSpec(
    "search",
    None,
    json.dumps({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
)


def test_built_in_tools_are_in_the_grammar_and_bare_only_while_offered() -> None:
    """A built-in tool's call is read even once it is no longer offered (its calls used up), so
    the grammar keeps its name; a bare call is read as one of an offered tool only."""
    offered = tooling.plan_tools(request(WEATHER), NATIVE, [Builtin(SEARCH, offered=True)])
    assert offered.grammar is not None and '\\"search\\"' in offered.grammar
    assert offered.start_pattern is not None and re.match(offered.start_pattern, '{"name": "search"')
    used_up = tooling.plan_tools(request(WEATHER), NATIVE, [Builtin(SEARCH, offered=False)])
    assert used_up.grammar is not None and '\\"search\\"' in used_up.grammar
    assert used_up.start_pattern is not None and not re.match(used_up.start_pattern, '{"name": "search"')
    only_search = tooling.plan_tools(request(), NATIVE, [Builtin(SEARCH, offered=False)])
    assert only_search.grammar is not None and only_search.start_pattern is None
