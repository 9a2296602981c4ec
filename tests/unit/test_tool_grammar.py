"""Grammars for forced calls, auto-mode calls and JSON mode: llama.cpp parses every one of them,
they take the shapes of each family's calls, and an auto-mode call keeps to the offered tools'
schemas. Dated snapshot names resolve by the documented rule."""

from __future__ import annotations

import ctypes
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest

from thinkserve.catalogue import snapshots
from thinkserve.catalogue.spec import load_catalogue
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ResponseFormat, SamplingParams, ToolSpec
from thinkserve.engine.llamacpp.grammar import ConstraintState
from thinkserve.engine.protocol import Constraint, EngineRequest
from thinkserve.tools import grammar
from thinkserve.tools.formats import DEEPSEEK, HERMES, KIMI, CallFormat

TINY = Path(__file__).parent.parent / "fixtures" / "tiny-qwen3.gguf"
WEATHER = ToolSpec(
    "get_current_weather",
    "weather",
    json.dumps({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}),
)
NO_ARGS = ToolSpec("get_current_time", None, "{}")


@pytest.fixture(scope="module")
def vocab() -> Iterator[Any]:
    from thinkserve.engine.llamacpp.tokenizer import VocabFile

    file = VocabFile(str(TINY))
    try:
        yield llama_cpp.llama_model_get_vocab(file._model)
    finally:
        file.close()


def parses(vocab: Any, rules: str) -> bool:
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, rules.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


@pytest.mark.parametrize("fmt", [HERMES, DEEPSEEK, KIMI], ids=lambda f: f.name)
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("only", [None, "get_current_weather"])
def test_call_grammars_parse(vocab: Any, fmt: CallFormat, parallel: bool, only: str | None) -> None:
    rules = grammar.call_grammar(fmt, [NO_ARGS, WEATHER], only=only, parallel=parallel)
    assert parses(vocab, rules), rules
    assert fmt.call_begin in rules and fmt.call_end in rules
    assert ("get_current_time" in rules) is (only is None)


@pytest.mark.parametrize(
    "schema",
    [
        None,
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "string"}}},
        },
        {
            "type": "object",
            "properties": {"x": {"enum": ["p", "q"]}},
            "required": ["x"],
            "additionalProperties": False,
        },
        {"$defs": {"n": {"type": "number"}}, "type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}},
    ],
)
def test_json_grammars_parse(vocab: Any, schema: dict[str, Any] | None) -> None:
    rules = grammar.json_grammar(ResponseFormat(None if schema is None else json.dumps(schema)))
    assert parses(vocab, rules), rules


def test_a_schema_the_converter_cannot_enforce_is_a_400() -> None:
    with pytest.raises(InvalidParameter):
        grammar.json_grammar(ResponseFormat(json.dumps({"$ref": "#/nowhere"})))


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("qwen-plus-2025-07-14", "qwen-plus"),
        ("qwen-plus-2025-09-11", "qwen-plus"),
        ("qwen-plus-2030-01-01", "qwen-plus"),
        ("qwen-turbo-2025-07-15", "qwen-turbo"),
        ("qwen-flash-2025-07-29", "qwen-flash"),
        ("qwen-plus-2025-04-28", None),  # listed itself, with its own rules
    ],
)
def test_later_snapshots_take_their_familys_rules(name: str, family: str | None) -> None:
    models = load_catalogue()
    spec = snapshots.resolve(name, models)
    assert spec is not None and spec.name == name
    if family is not None:
        base = models[family]
        assert (spec.mode, spec.thinking_default, spec.non_stream, spec.max_cot) == (
            base.mode,
            base.thinking_default,
            base.non_stream,
            base.max_cot,
        )
        assert not spec.soft_switch


@pytest.mark.parametrize(
    "name",
    [
        "qwen-plus-2025-04-27",
        "qwen-flash-2025-07-27",
        "qwen-plus-2025-02-30",
        "qwq-plus-2026-01-01",
        "gpt-4-2025-07-14",
        "qwen-plus-latest-2025-09-01",
        "nothing",
    ],
)
def test_other_names_stay_unknown(name: str) -> None:
    assert snapshots.resolve(name, load_catalogue()) is None


def test_repetitions_llama_cpp_would_expand_beyond_reason_are_a_400() -> None:
    huge = {"type": "object", "properties": {"xs": {"type": "array", "minItems": 10**6}}}
    with pytest.raises(InvalidParameter, match="minItems above 1024"):
        grammar.json_grammar(ResponseFormat(json.dumps(huge)))


def test_strings_exclude_raw_control_characters() -> None:
    """JSON forbids them; llama-cpp-python's converter alone would let a raw newline through."""
    rules = grammar.json_grammar(
        ResponseFormat(json.dumps({"type": "object", "properties": {"s": {"type": "string"}}}))
    )
    (char,) = [line for line in rules.splitlines() if line.startswith("char ::=")]
    assert "\\x00-\\x1F" in char


# -- auto mode: the rest of a call after its marker -----------------------------------------

MODE = ToolSpec(
    "set_mode",
    "mode",
    json.dumps(
        {
            "type": "object",
            "properties": {"mode": {"type": "string", "enum": ["fast", "slow"]}},
            "required": ["mode"],
        }
    ),
)


def follows(vocab: Any, rules: str, text: str) -> tuple[bool, bool]:
    """Whether ``text`` (tokenized, special tokens parsed) keeps to ``rules``, and whether the
    grammar may end there (an end-of-generation token passes it)."""
    grammar = llama_cpp.llama_sampler_init_grammar(vocab, rules.encode(), b"root")
    assert grammar, rules
    try:
        data = text.encode()
        buf = (llama_cpp.llama_token * (len(data) + 8))()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, len(buf), False, True)
        assert n >= 0
        for token in buf[:n]:
            if not _allowed(grammar, token):
                return False, False
            llama_cpp.llama_sampler_accept(grammar, token)
        return True, _allowed(grammar, int(llama_cpp.llama_vocab_eos(vocab)))
    finally:
        llama_cpp.llama_sampler_free(grammar)


def _allowed(grammar: Any, token: int) -> bool:
    data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
    array = llama_cpp.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)
    llama_cpp.llama_sampler_apply(grammar, ctypes.byref(array))
    return bool(data[0].logit > -1e30)


def hermes(name: str, arguments: str) -> str:
    return f'\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


@pytest.mark.parametrize("fmt", [HERMES, DEEPSEEK, KIMI], ids=lambda f: f.name)
@pytest.mark.parametrize("parallel", [False, True])
def test_trigger_grammars_parse_and_start_after_the_marker(
    vocab: Any, fmt: CallFormat, parallel: bool
) -> None:
    rules = grammar.trigger_grammar(fmt, [NO_ARGS, WEATHER, MODE], parallel=parallel)
    assert parses(vocab, rules), rules
    (root,) = [line for line in rules.splitlines() if line.startswith("root ::=")]
    assert not root.removeprefix("root ::= ").startswith(json.dumps(fmt.call_begin, ensure_ascii=False))
    assert fmt.call_end in root
    assert (fmt.call_begin in rules) is parallel  # only further calls spell the marker out
    assert all(name in rules for name in ("get_current_time", "get_current_weather", "set_mode"))
    if fmt.section_end:
        assert fmt.section_end in root


def test_the_call_after_the_marker_follows_the_tools_schemas(vocab: Any) -> None:
    rules = grammar.trigger_grammar(HERMES, [WEATHER, MODE], parallel=False)
    assert follows(vocab, rules, hermes("set_mode", '{"mode": "fast"}')) == (True, True)
    weather = hermes("get_current_weather", '{"location": "Hangzhou"}')
    assert follows(vocab, rules, weather + "\n") == (True, True)
    # Unfinished: the grammar does not let the answer end there.
    assert follows(vocab, rules, '\n{"name": "set_mode", "arguments": {"mode": "fast"}}') == (True, False)
    # What small models write instead: the parameters' schema, an enum's outsider, a missing
    # required argument, a tool that was not offered, text after the call.
    schema_as_arguments = '{"type": "object", "properties": {"mode": {"type": "string"}}}'
    for wrong in [
        hermes("set_mode", schema_as_arguments),
        hermes("set_mode", '{"mode": "medium"}'),
        hermes("get_current_weather", "{}"),
        hermes("get_current_time", "{}"),
        hermes("set_mode", '{"mode": "fast"}') + "\nDone.",
    ]:
        assert follows(vocab, rules, wrong)[0] is False, wrong


def test_parallel_calls_after_the_marker(vocab: Any) -> None:
    one = hermes("set_mode", '{"mode": "slow"}')
    two = one + "\n<tool_call>" + hermes("get_current_weather", '{"location": "Hangzhou"}')
    parallel = grammar.trigger_grammar(HERMES, [WEATHER, MODE], parallel=True)
    assert follows(vocab, parallel, two) == (True, True)
    single = grammar.trigger_grammar(HERMES, [WEATHER, MODE], parallel=False)
    assert follows(vocab, single, two)[0] is False
    # At most MAX_PARALLEL calls in all.
    many = one + ("\n<tool_call>" + one) * (grammar.MAX_PARALLEL - 1)
    rules = grammar.trigger_grammar(HERMES, [MODE], parallel=True)
    assert follows(vocab, rules, many) == (True, True)
    assert follows(vocab, rules, many + "\n<tool_call>" + one)[0] is False


def test_deepseek_calls_end_with_the_section(vocab: Any) -> None:
    rules = grammar.trigger_grammar(DEEPSEEK, [MODE], parallel=False)
    call = 'function<｜tool▁sep｜>set_mode\n```json\n{"mode": "fast"}\n```<｜tool▁call▁end｜>'
    assert follows(vocab, rules, call) == (True, False)
    assert follows(vocab, rules, call + "<｜tool▁calls▁end｜>") == (True, True)


def test_forced_calls_may_end_with_whitespace(vocab: Any) -> None:
    rules = grammar.call_grammar(HERMES, [MODE], only=None, parallel=True)
    call = "<tool_call>" + hermes("set_mode", '{"mode": "fast"}')
    assert follows(vocab, rules, call + "\n") == (True, True)


def _state_after(vocab: Any, text: str) -> tuple[ConstraintState, bool]:
    rules = grammar.trigger_grammar(HERMES, [MODE], parallel=False)
    state = ConstraintState(Constraint(rules, trigger="<tool_call>"))
    state.saw(0, text)
    assert state.active
    request = EngineRequest("r", [0], SamplingParams(temperature=0.0), 16)
    return state, state.ready(request, vocab, int(llama_cpp.llama_vocab_n_tokens(vocab)), 64)


def test_text_after_the_trigger_in_its_token_is_fed_to_the_grammar(vocab: Any) -> None:
    """A tokenizer without a ``<tool_call>`` token may write the trigger and the call's start at once."""
    state, ready = _state_after(vocab, '<tool_call>\n{"name": "set_')
    try:
        assert ready
        logits = np.zeros(int(llama_cpp.llama_vocab_n_tokens(vocab)), np.float32)
        logits[int(llama_cpp.llama_vocab_eos(vocab))] = 10.0  # the model would stop: it may not
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(vocab, state.sample(logits), buf, len(buf), 0, True)
        assert buf.raw[:n].decode()[0] == "m"  # "set_mode" is the only offered name
    finally:
        state.free()


def test_text_after_the_trigger_that_breaks_the_grammar_leaves_the_rest_free(vocab: Any) -> None:
    state, ready = _state_after(vocab, "<tool_call>garbage")
    assert not ready and not state.active and state.grammar is None
    state.saw(0, "<tool_call>")
    assert not state.active


def test_a_bare_call_is_held_to_the_schema_from_its_brace(vocab: Any) -> None:
    """The bare call's pattern hands the grammar the answer from its ``{``; the grammar then
    takes the rest of the call, closed by ``</tool_call>`` (which the tool stage reads)."""
    pattern = re.compile(grammar.bare_call_pattern([WEATHER, MODE]))
    answer = '\n\n{"name": "set_mode", "arguments": {"mode": "fast"}}'
    match = pattern.match(answer)
    assert match is not None and match.group(1) == '{"name": "set_mode"'
    assert pattern.match('{"name": "set_mode_x"') is None
    assert pattern.match('Sure. {"name": "set_mode"') is None
    rules = grammar.trigger_grammar(HERMES, [WEATHER, MODE], parallel=False)
    bare = answer[match.start(1) :]
    assert follows(vocab, rules, bare) == (True, False)
    assert follows(vocab, rules, bare + "\n</tool_call>") == (True, True)
    schema_as_arguments = '{"name": "set_mode", "arguments": {"type": "object"'
    assert follows(vocab, rules, schema_as_arguments)[0] is False
