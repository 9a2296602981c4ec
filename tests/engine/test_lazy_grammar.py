"""Auto-mode tool calls on the real engine (tiny Qwen3): a lazy grammar leaves decoding free
until the call marker appears in the answer (or the answer begins a bare Hermes call), then
holds the rest of the call to an offered tool's schema.

The calls are started by injecting their start (as the thinking budget injects its text),
so these tests hold whatever the tiny model was trained to write; the API test of a call the
model starts itself is ``tests/api/test_tools_real.py``. The schemas are bounded (enums, a
``maxLength``) so that any model ends its call within a few dozen tokens.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import jsonschema
import pytest

from thinkserve.core.types import SamplingParams, ToolSpec
from thinkserve.engine.llamacpp.engine import LlamaCppEngine
from thinkserve.engine.protocol import (
    Checkpoint,
    Constraint,
    EngineEvent,
    EngineFinished,
    EngineRequest,
    Paused,
    TokenEvent,
)
from thinkserve.tools import grammar
from thinkserve.tools.formats import HERMES

pytestmark = pytest.mark.slow
T = TypeVar("T")
CALL = "<tool_call>"
GREEDY = SamplingParams(temperature=0.0)
SCHEMAS: dict[str, dict[str, Any]] = {
    "set_mode": {
        "type": "object",
        "properties": {"mode": {"type": "string", "enum": ["fast", "slow"]}},
        "required": ["mode"],
    },
    "get_current_weather": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "maxLength": 12},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location", "unit"],
    },
}
TOOLS = [ToolSpec(name, None, json.dumps(schema)) for name, schema in SCHEMAS.items()]


def run(factory: Callable[[], Awaitable[T]], timeout: float = 120) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(factory(), timeout)

    return asyncio.run(bounded())


def chat(engine: LlamaCppEngine, user: str, *, think: bool = False) -> list[int]:
    head = "<think>\n" if think else ""
    text = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{head}"
    return engine.tokenizer.encode(text)


async def injected_run(
    engine: LlamaCppEngine, request: EngineRequest, inject: list[int]
) -> list[EngineEvent]:
    """Pause before the first token, inject ``inject``, then let the model go on."""
    seq = engine.submit(request)
    head = [event async for event in seq]
    assert head == [Paused()]
    seq.resume(inject)
    return [event async for event in seq]


def sampled_text(events: list[EngineEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenEvent) and not e.injected)


def calls_in(text: str) -> int:
    """How many Hermes calls ``text`` (what followed the first ``<tool_call>``) holds, each of an
    offered tool with arguments of its schema; fails on anything else. (A string value may hold
    ``<tool_call>``: the model may sample that token as text there.)"""
    decoder = json.JSONDecoder()
    n, rest = 0, text
    while True:
        call, end = decoder.raw_decode(rest.lstrip())
        assert set(call) == {"name", "arguments"}, text
        jsonschema.validate(call["arguments"], SCHEMAS[call["name"]])
        n += 1
        rest = rest.lstrip()[end:].lstrip()
        assert rest.startswith("</tool_call>"), text
        rest = rest.removeprefix("</tool_call>").lstrip()
        if not rest:
            return n
        assert rest.startswith(CALL), text
        rest = rest.removeprefix(CALL)


@pytest.mark.parametrize(
    "sampling", [GREEDY, SamplingParams(temperature=1.0, seed=3)], ids=["greedy", "sampled"]
)
@pytest.mark.parametrize("parallel", [False, True])
def test_after_the_marker_the_call_follows_an_offered_schema(
    engine: LlamaCppEngine, sampling: SamplingParams, parallel: bool
) -> None:
    rules = grammar.trigger_grammar(HERMES, TOOLS, parallel=parallel)
    request = EngineRequest(
        "lazy",
        chat(engine, "Set the mode to fast, then tell me the weather in Hangzhou."),
        sampling,
        max_tokens=600,
        checkpoint=Checkpoint(limit=0),
        constraint=Constraint(rules, trigger=CALL),
    )
    events = run(lambda: injected_run(engine, request, engine.tokenizer.encode("Sure.\n" + CALL)))
    end = events[-1]
    assert isinstance(end, EngineFinished) and end.reason == "stop", sampled_text(events)
    n = calls_in(sampled_text(events))
    assert n == 1 or parallel


@pytest.mark.parametrize("thinking", [False, True])
def test_a_bare_call_is_held_to_the_schema(engine: LlamaCppEngine, thinking: bool) -> None:
    """A Hermes call begun bare at the start of the answer (as small models write them) fires
    the grammar too: the rest follows the tool's schema and closes with ``</tool_call>``."""
    start = '{"name": "get_current_weather"'
    end = engine.tokenizer.token_id("</think>")
    request = EngineRequest(
        "bare",
        chat(engine, "The weather in Hangzhou, please.", think=thinking),
        GREEDY,
        max_tokens=200,
        checkpoint=Checkpoint(limit=0),
        constraint=Constraint(
            grammar.trigger_grammar(HERMES, TOOLS, parallel=False),
            after_token=end if thinking else None,
            trigger=CALL,
            start_pattern=grammar.bare_call_pattern(TOOLS),
        ),
    )
    head = "Short.\n</think>\n\n" if thinking else ""
    events = run(lambda: injected_run(engine, request, engine.tokenizer.encode(head + start)))
    last = events[-1]
    assert isinstance(last, EngineFinished) and last.reason == "stop", sampled_text(events)
    assert calls_in(start + sampled_text(events)) == 1


def test_free_until_the_marker_and_never_inside_the_reasoning(engine: LlamaCppEngine) -> None:
    """A lazy constraint changes nothing before its trigger: the same greedy tokens as with no
    constraint, though ``<tool_call>`` was written while thinking (up to the first one written
    after ``</think>``, if the model writes one)."""
    prompt = chat(engine, "What is the weather in Hangzhou?", think=True)
    end = engine.tokenizer.token_id("</think>")
    assert end is not None
    inject = engine.tokenizer.encode(f"I could write {CALL} here, but first I think.")
    rules = grammar.trigger_grammar(HERMES, TOOLS, parallel=False)

    def req(constraint: Constraint | None) -> EngineRequest:
        return EngineRequest("r", prompt, GREEDY, 120, Checkpoint(limit=0), constraint)

    async def body() -> tuple[list[EngineEvent], list[EngineEvent]]:
        await injected_run(engine, req(None), inject)  # the prompt is cached from here on, as below
        free = await injected_run(engine, req(None), inject)
        bare = grammar.bare_call_pattern(TOOLS)
        lazy_constraint = Constraint(rules, after_token=end, trigger=CALL, start_pattern=bare)
        lazy = await injected_run(engine, req(lazy_constraint), inject)
        return free, lazy

    free, lazy = run(body)
    free_tokens = [e.token for e in free if isinstance(e, TokenEvent)]
    lazy_tokens = [e.token for e in lazy if isinstance(e, TokenEvent)]
    # Where a call of the model's own would begin: a trigger after </think>, or a bare call.
    cut = len(free_tokens)
    bare = re.compile(grammar.bare_call_pattern(TOOLS))
    if end in free_tokens:
        answer = ""
        for i in range(free_tokens.index(end) + 1, len(free_tokens)):
            answer += engine.tokenizer.decode([free_tokens[i]])
            if CALL in answer or bare.match(answer):
                cut = i + 1
                break
    assert lazy_tokens[:cut] == free_tokens[:cut]
    if cut == len(free_tokens):
        assert lazy_tokens == free_tokens
