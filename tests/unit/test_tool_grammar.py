"""Grammars for forced calls and JSON mode: llama.cpp parses every one of them, and they take the
shapes of each family's calls. Dated snapshot names resolve by the documented rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from thinkserve.catalogue import snapshots
from thinkserve.catalogue.spec import load_catalogue
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ResponseFormat, ToolSpec
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
