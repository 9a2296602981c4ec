"""The tool-calling loop (``service.rounds``) on the scripted engine with a stand-in built-in tool:
one response over several rounds, the budget and ``max_tokens`` counted across them, usage added
up, the rounds bounded, and every way a round may end."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from thinkserve.catalogue.spec import load_catalogue
from thinkserve.core.events import Collected, ReasoningDelta, Searched, fold
from thinkserve.core.types import ChatRequest, Message, SearchOptions, ToolSpec, Usage
from thinkserve.engine.fake.engine import FakeEngine, FakeSequence
from thinkserve.engine.protocol import EngineRequest
from thinkserve.service.generation import GenerationService, Runtime
from thinkserve.thinking.chat_format import ChatFormat
from thinkserve.tools.builtin import Ran

QUESTION = (Message("user", "What is the capital of France?"),)
SPEC = ToolSpec(
    "search",
    "Search the web.",
    '{"properties": {"query": {"type": "string"}}, "required": ["query"], "type": "object"}',
)


class StandIn:
    """A built-in ``search`` that finds one result per call."""

    def __init__(self, limit: int = 3) -> None:
        self.arguments: list[str] = []
        self._limit = limit

    @property
    def spec(self) -> ToolSpec:
        return SPEC

    @property
    def offered(self) -> bool:
        return len(self.arguments) < self._limit

    async def run(self, arguments: str) -> Ran:
        self.arguments.append(arguments)
        n = len(self.arguments)
        return Ran(f"[{n}] Paris\nURL: https://example.org/{n}", Searched("q", (), SearchOptions()))


class Recording(FakeEngine):
    """The scripted engine, keeping every request it was given."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.requests: list[EngineRequest] = []

    def submit(self, request: EngineRequest) -> FakeSequence:
        self.requests.append(request)
        return super().submit(request)


def _run(engine: FakeEngine, tool: StandIn, **fields: object) -> Collected:
    service = GenerationService(load_catalogue(), {"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    request = ChatRequest(model="qwen-plus", messages=QUESTION, stream=True, enable_thinking=True)
    checked = replace(service.check(replace(request, **fields)), builtins=(tool,))  # type: ignore[arg-type]
    return asyncio.run(fold(service.stream(service.render(checked))))


def _reasoning_tokens(engine: FakeEngine) -> int:
    """What one round's reasoning counts: the text between the tags, newlines included."""
    return len(f"\n{engine.reasoning}\n")


def test_two_rounds_make_one_response() -> None:
    engine, tool = Recording(answer="Paris [1]."), StandIn()
    collected = _run(engine, tool)
    assert tool.arguments == ['{"query": "What is the capital of France?"}']
    assert collected.tool_calls == ()
    assert collected.answer == "Paris [1]."
    assert collected.reasoning == f"{engine.reasoning}\n\n{engine.reasoning}"
    assert collected.finished.reason == "stop"
    assert collected.searches == 1
    first, second = engine.stats.prompts
    usage = collected.finished.usage
    assert usage.prompt_tokens == len(first) + len(second)
    assert usage.cached_tokens == len(first)  # the second prompt continues the first
    assert usage.completion_tokens == engine.stats.sampled_tokens
    assert usage.reasoning_tokens == 2 * _reasoning_tokens(engine)
    text = engine.tokenizer.decode(second)
    assert '{"name": "search", "arguments": {"query": "What is the capital of France?"}}' in text
    assert "<tool_response>\n[1] Paris\nURL: https://example.org/1\n</tool_response>" in text


def test_rounds_are_bounded_and_the_last_is_offered_no_tool() -> None:
    engine, tool = Recording(tool_rounds=10), StandIn(limit=3)
    collected = _run(engine, tool)
    assert len(tool.arguments) == 3 and collected.searches == 3
    assert collected.answer == engine.answer
    prompts = [engine.tokenizer.decode(p) for p in engine.stats.prompts]
    assert len(prompts) == 4
    assert all("<tools>" in p for p in prompts[:3]) and "<tools>" not in prompts[3]
    assert collected.reasoning.count(engine.reasoning) == 4


def test_the_thinking_budget_counts_across_rounds() -> None:
    engine, tool = Recording(), StandIn()
    one = _reasoning_tokens(engine)
    budget = one + 10
    collected = _run(engine, tool, thinking_budget=budget)
    second = engine.requests[1].checkpoint
    assert second is not None
    assert second.limit == budget - one + 1  # the model's own <think> costs one sampled token
    assert collected.finished.usage.reasoning_tokens == budget
    assert collected.answer == engine.answer


def test_a_budget_used_up_in_the_first_round_leaves_none_for_the_next() -> None:
    engine, tool = Recording(), StandIn()
    collected = _run(engine, tool, thinking_budget=5)
    assert tool.arguments  # the early stop came, then the call
    second = engine.requests[1].checkpoint
    assert second is not None and second.limit == 1
    assert collected.finished.usage.reasoning_tokens == 5
    assert collected.answer == engine.answer


def _first_round(engine: FakeEngine, upto: str = "") -> int:
    """Tokens the scripted model samples in the first round: reasoning, then the call (up to
    ``upto`` in it, when given)."""
    call = (
        '<tool_call>\n{"name": "search", "arguments": {"query": "What is the capital of France?"}}'
        "\n</tool_call>"
    )
    if upto:
        call = call[: call.index(upto) + len(upto)]
    return len(engine.tokenizer.encode(f"<think>\n{engine.reasoning}\n</think>\n\n{call}"))


def test_max_tokens_counts_across_rounds() -> None:
    engine, tool = Recording(), StandIn()
    collected = _run(engine, tool, max_tokens=200)
    assert [r.max_tokens for r in engine.requests] == [200, 200 - _first_round(engine)]
    assert collected.finished.usage.completion_tokens == 200
    assert collected.finished.reason == "length"


def test_a_call_cut_by_max_tokens_is_not_run() -> None:
    engine, tool = Recording(), StandIn()
    collected = _run(engine, tool, max_tokens=_first_round(engine, upto='"query": "What'))
    assert tool.arguments == []
    assert collected.finished.reason == "length"
    assert collected.tool_calls == () and collected.answer == ""
    assert len(engine.requests) == 1


def test_a_call_of_a_tool_no_longer_offered_ends_the_response() -> None:
    # Offered no tool, the model still writes a call of the built-in one: not for the client.
    call = '<tool_call>\n{"name": "search", "arguments": {"query": "again"}}\n</tool_call>'
    engine, tool = Recording(answer=call), StandIn(limit=0)
    collected = _run(engine, tool)
    assert "<tools>" not in engine.tokenizer.decode(engine.stats.prompts[0])
    assert tool.arguments == [] and collected.tool_calls == ()
    assert collected.answer == "" and collected.finished.reason == "stop"
    assert len(engine.requests) == 1


def test_a_call_in_another_key_order_is_still_the_servers() -> None:
    call = '<tool_call>\n{"arguments": {"query": "Paris"}, "name": "search"}\n</tool_call>'
    engine, tool = Recording(answer=call), StandIn(limit=0)
    collected = _run(engine, tool)
    assert collected.tool_calls == () and collected.answer == ""


def test_a_response_closed_in_its_second_round_counts_both() -> None:
    engine, tool = Recording(), StandIn()
    service = GenerationService(load_catalogue(), {"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    request = ChatRequest(model="qwen-plus", messages=QUESTION, stream=True, enable_thinking=True)
    plan = service.render(replace(service.check(request), builtins=(tool,)))

    async def cut() -> Usage:
        stream = service.stream(plan)
        searched = False
        async for event in stream:
            searched = searched or isinstance(event, Searched)
            if searched and isinstance(event, ReasoningDelta):
                break
        await stream.aclose()  # the client went away: the round's sequence is settled
        assert plan.progress.settling is not None
        return await plan.progress.settling

    usage = asyncio.run(cut())
    first, second = engine.stats.prompts
    assert usage.prompt_tokens == len(first) + len(second)
    assert usage.completion_tokens == engine.stats.sampled_tokens
    assert engine.stats.cancelled >= 2


def test_each_later_prompt_tops_up_the_admission() -> None:
    engine, tool = Recording(), StandIn()
    service = GenerationService(load_catalogue(), {"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    request = ChatRequest(model="qwen-plus", messages=QUESTION, stream=True)
    plan = service.render(replace(service.check(request), builtins=(tool,)))
    counted: list[int] = []
    plan.progress.counted = counted.append  # what service.flow sets: Admission.exact_prompt
    asyncio.run(fold(service.stream(plan)))
    first, second = engine.stats.prompts
    assert counted == [len(first) + len(second)]
