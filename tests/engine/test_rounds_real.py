"""The tool-calling loop (``service.rounds``) on the llama.cpp engine, whatever the model was trained
to do: the first round's answer is constrained by a grammar to a call of the built-in ``search``,
so that the loop surely runs; the second round is free. One response comes out: no call, the
reasoning of both rounds, usage added up, the thinking budget and ``max_tokens`` held across
rounds, and the second round reusing the first's KV."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from thinkserve.catalogue.spec import load_catalogue
from thinkserve.core.events import Searched, fold
from thinkserve.core.types import ChatRequest, Message, SearchOptions, ToolChoice, ToolSpec
from thinkserve.engine.llamacpp.engine import LlamaCppEngine
from thinkserve.engine.protocol import Constraint
from thinkserve.service.generation import GenerationService, Runtime
from thinkserve.thinking.chat_format import ChatFormat
from thinkserve.tools import grammar
from thinkserve.tools.builtin import Ran
from thinkserve.tools.formats import HERMES

pytestmark = pytest.mark.slow
# The search tool as offered, its query bounded: a grammar cannot make a tiny model close a string.
SPEC = ToolSpec(
    "search",
    "Search the web for current or specific information.",
    '{"properties": {"query": {"maxLength": 24, "type": "string"}}, "required": ["query"], "type": "object"}',
)
RESULT = "[1] France\nURL: https://example.org/france\nParis is the capital of France."


class StandIn:
    def __init__(self) -> None:
        self.arguments: list[str] = []

    spec = SPEC

    @property
    def offered(self) -> bool:
        return len(self.arguments) < 3

    async def run(self, arguments: str) -> Ran:
        self.arguments.append(arguments)
        return Ran(RESULT, Searched("capital of France", (), SearchOptions()))


def test_a_forced_first_call_runs_the_loop(engine: LlamaCppEngine) -> None:
    runtime = Runtime(engine, ChatFormat(engine.tokenizer))
    service = GenerationService(load_catalogue(), {"default": runtime})
    tool = StandIn()
    request = ChatRequest(
        model="qwen-plus",
        messages=(Message("user", "What is the capital of France?"),),
        stream=True,
        enable_thinking=True,
        thinking_budget=40,
        max_tokens=300,
    )
    plan = service.render(replace(service.check(request), builtins=(tool,)))
    assert '"name": "search"' in engine.tokenizer.decode(plan.prompt.tokens)
    rules = grammar.call_grammar(HERMES, (SPEC,), only=None, parallel=False)
    forced = Constraint(rules, after_token=runtime.chat.end_id)
    plan = replace(plan, engine_request=replace(plan.engine_request, constraint=forced))
    collected = asyncio.run(fold(service.stream(plan)))
    assert len(tool.arguments) == 1, collected
    assert collected.tool_calls == () and collected.searches == 1
    assert "<tool_call>" not in collected.answer
    usage = collected.finished.usage
    assert usage.reasoning_tokens <= 40
    assert usage.completion_tokens <= 300
    # Two prompts counted, the second continuing the first: its KV was reused.
    assert usage.prompt_tokens > 2 * len(plan.prompt.tokens)
    assert usage.cached_tokens > 0
    assert collected.finished.reason in ("stop", "length")


def test_a_response_cut_at_its_call_reports_the_cached_prompt(engine: LlamaCppEngine) -> None:
    """A forced call ends the response when the call is complete, before the engine ends the
    sequence: the engine's answer to the cancel still says how much of the prompt it reused, and
    the same question asked again reuses all of it but the last token."""
    runtime = Runtime(engine, ChatFormat(engine.tokenizer))
    service = GenerationService(load_catalogue(), {"default": runtime})
    weather = ToolSpec(
        "get_weather",
        "The weather in a city.",
        '{"properties": {"city": {"maxLength": 16, "type": "string"}}, "required": ["city"], '
        '"type": "object"}',
    )
    request = ChatRequest(
        model="qwen-plus",
        messages=(Message("user", "What is the weather in Oslo today, and tomorrow?"),),
        stream=True,
        enable_thinking=False,
        max_tokens=60,
        tools=(weather,),
        tool_choice=ToolChoice("required", "get_weather"),
    )

    def ask() -> tuple[str, int, int]:
        plan = service.render(service.check(request))
        collected = asyncio.run(fold(service.stream(plan)))
        (call,) = collected.tool_calls
        assert call.name == "get_weather" and collected.finished.reason == "tool_calls"
        return call.arguments, collected.finished.usage.cached_tokens, len(plan.prompt.tokens)

    ask()
    _, cached, prompt = ask()
    assert cached == prompt - 1
