"""The tool-call parser: every family's format, split anywhere, from the answer only."""

from __future__ import annotations

import json
import random

import pytest

from thinkserve.core.events import AnswerDelta, ReasoningDelta, ToolCallDelta
from thinkserve.engine.protocol import TokenEvent
from thinkserve.service.pipeline import DecodePipeline
from thinkserve.thinking.parser import Segment, TextSplitter
from thinkserve.tools.formats import DEEPSEEK, HERMES, KIMI, CallFormat, format_of
from thinkserve.tools.stage import ToolCallStage, ToolPiece

Calls = dict[int, list[str]]


def run(
    fmt: CallFormat, text: str, *, parallel: bool = True, seed: int = 0, names: frozenset[str] = frozenset()
) -> tuple[str, Calls, str | None]:
    """Feed ``text`` in random pieces; the answer text, the calls (id, name, arguments), the end."""
    stage = ToolCallStage(fmt, parallel=parallel, new_id=lambda: "call_x", names=names)
    rnd = random.Random(seed)
    out: list[Segment | ToolPiece] = []
    i = 0
    while i < len(text) and stage.ended is None:
        n = rnd.randint(1, 7)
        out += stage.feed([Segment("answer", text[i : i + n])])
        i += n
    out += stage.finish()
    answer = "".join(p.text for p in out if isinstance(p, Segment))
    calls: Calls = {}
    for p in out:
        if isinstance(p, ToolPiece):
            if p.name is not None:
                assert p.index not in calls and p.id
                calls[p.index] = [p.id, p.name, ""]
            calls[p.index][2] += p.arguments
    return answer, calls, stage.ended


HERMES_TWO = (
    '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Hang}zhou", "n": {"a": 1}}}\n'
    '</tool_call>\n<tool_call>\n{"name": "get_current_time", "arguments": {}}\n</tool_call>'
)


@pytest.mark.parametrize("seed", range(20))
def test_hermes_calls_split_anywhere(seed: int) -> None:
    answer, calls, ended = run(HERMES, HERMES_TWO, seed=seed)
    assert answer == ""
    assert calls == {
        0: ["call_x", "get_current_weather", '{"location": "Hang}zhou", "n": {"a": 1}}'],
        1: ["call_x", "get_current_time", "{}"],
    }
    assert ended is None


def test_without_parallel_calls_the_first_call_ends_the_answer() -> None:
    answer, calls, ended = run(HERMES, HERMES_TWO + " trailing", parallel=False)
    assert list(calls) == [0] and ended == "tool_calls" and answer == ""


@pytest.mark.parametrize("seed", range(10))
def test_deepseek_calls(seed: int) -> None:
    text = (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_current_weather\n```json\n"
        '{"location": "Beijing"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
    )
    assert run(DEEPSEEK, text, seed=seed) == (
        "",
        {0: ["call_x", "get_current_weather", '{"location": "Beijing"}']},
        None,
    )


@pytest.mark.parametrize("seed", range(10))
def test_kimi_calls_take_their_id_from_the_model(seed: int) -> None:
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"city": "Beijing"}<|tool_call_end|><|tool_call_begin|>functions.get_time:1'
        "<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>"
    )
    assert run(KIMI, text, seed=seed) == (
        "",
        {
            0: ["functions.get_weather:0", "get_weather", '{"city": "Beijing"}'],
            1: ["functions.get_time:1", "get_time", "{}"],
        },
        None,
    )


def test_text_before_a_call_is_answer_and_other_key_orders_still_parse() -> None:
    text = 'Sure. <tool_call>\n{"arguments": {"x": 1}, "name": "f"}\n</tool_call>'
    assert run(HERMES, text) == ("Sure. ", {0: ["call_x", "f", '{"x": 1}']}, None)


def test_an_unreadable_block_is_given_back_as_text() -> None:
    text = "Sure. <tool_call>garbage</tool_call> done"
    assert run(HERMES, text) == (text, {}, None)


def test_a_call_cut_short_is_still_a_call_with_the_text_written() -> None:
    assert run(HERMES, '<tool_call>\n{"name": "f", "arguments": {"x": 1') == (
        "",
        {0: ["call_x", "f", '{"x": 1']},
        None,
    )


def test_text_that_only_looks_like_the_start_of_a_tag() -> None:
    assert run(HERMES, "a < b <tool") == ("a < b <tool", {}, None)


def test_the_format_comes_from_the_chat_template() -> None:
    assert format_of("{% if tools %}<tool_call>{% endif %}") is HERMES
    assert format_of("{{'<｜tool▁calls▁begin｜>'}}") is DEEPSEEK
    assert format_of("<|tool_calls_section_begin|>") is KIMI
    assert format_of(None) is HERMES


def test_a_call_written_inside_the_reasoning_stays_reasoning() -> None:
    """vLLM issues 17655 / 39056: calls are parsed from the answer only."""
    pipeline = DecodePipeline(
        TextSplitter(in_reasoning=True),
        [],
        prompt_tokens=1,
        tags=frozenset(),
        calls=ToolCallStage(HERMES, parallel=False, new_id=lambda: "call_x"),
    )
    pieces = [
        'I could write <tool_call>\n{"name": "f", "arguments": {}}\n</tool_call> here.',
        "\n</think>\n\n",
        '<tool_call>\n{"name": "g", "arguments": {"a": 2}}\n</tool_call>',
    ]
    events = []
    for i, text in enumerate(pieces):
        events += pipeline.feed(TokenEvent(i, text))
    events += pipeline.finish(0)
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert "<tool_call>" in reasoning
    assert not [e for e in events if isinstance(e, AnswerDelta)]
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls[0].name == "g" and "".join(c.arguments for c in calls) == '{"a": 2}'
    assert pipeline.reason("stop") == "tool_calls"


@pytest.mark.parametrize("seed", range(10))
def test_a_bare_hermes_call_of_an_offered_tool_is_a_call(seed: int) -> None:
    text = '{"name": "get_current_weather", "arguments": {"location": "Hangzhou"}}'
    names = frozenset({"get_current_weather"})
    assert run(HERMES, text, seed=seed, names=names) == (
        "",
        {0: ["call_x", "get_current_weather", '{"location": "Hangzhou"}']},
        None,
    )
    # Not an offered tool, or text first: answer text.
    assert run(HERMES, text, seed=seed, names=frozenset({"other"}))[0] == text
    assert run(HERMES, "Sure: " + text, seed=seed, names=names)[1] == {}
    assert run(HERMES, '{"a": 1}', seed=seed, names=names) == ('{"a": 1}', {}, None)


@pytest.mark.parametrize("seed", range(10))
def test_a_bare_call_closed_by_the_end_tag_is_one_call(seed: int) -> None:
    """What the auto-mode grammar makes of a bare call (``tools.grammar.bare_call_pattern``): it
    is closed with ``</tool_call>``, and further calls may follow in their tags."""
    text = (
        '{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>'
    )
    names = frozenset({"f", "g"})
    assert run(HERMES, text, seed=seed, names=names) == (
        "",
        {0: ["call_x", "f", '{"a": 1}'], 1: ["call_x", "g", "{}"]},
        None,
    )
    assert run(HERMES, text, seed=seed, names=names, parallel=False) == (
        "",
        {0: ["call_x", "f", '{"a": 1}']},
        "tool_calls",
    )


def test_an_unclosed_call_still_ends_the_answer_as_a_call() -> None:
    pipeline = DecodePipeline(
        TextSplitter(),
        [],
        prompt_tokens=1,
        tags=frozenset(),
        calls=ToolCallStage(HERMES, parallel=False, new_id=lambda: "call_x"),
    )
    pipeline.feed(TokenEvent(1, '<tool_call>\n{"name": "f", "arguments": {"a": 1'))
    pipeline.finish(0)
    assert pipeline.reason("stop") == "tool_calls"
    assert pipeline.reason("length") == "length"


@pytest.mark.parametrize(
    "call",
    [
        '<tool_call>\n{"name": "search", "arguments": {"query": "Paris"}}\n</tool_call>',
        # Another key order: read whole, still the server's.
        '<tool_call>\n{"arguments": {"query": "Paris"}, "name": "search"}\n</tool_call>',
    ],
)
def test_a_builtin_call_is_kept_from_the_client_and_ends_the_answer(call: str) -> None:
    stage = ToolCallStage(HERMES, parallel=True, new_id=lambda: "call_x", builtin=frozenset({"search"}))
    out = stage.feed([Segment("answer", "Let me look. " + call + " more")]) + stage.finish()
    assert out == [Segment("answer", "Let me look. ")]
    assert stage.ended == "tool_calls" and not stage.called
    [kept] = stage.builtin_calls
    assert (kept.id, kept.name) == ("call_x", "search")
    assert json.loads(kept.arguments) == {"query": "Paris"}
