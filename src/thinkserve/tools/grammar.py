"""GBNF grammars that force a tool call or a JSON answer (imports core, tools.formats).

JSON Schema is turned into GBNF by llama-cpp-python's converter (``llama_cpp.llama_grammar``, a
port of llama.cpp's ``json_schema_to_grammar``, pure Python); this module adds the frame each model
family writes around a call. Every grammar allows a little whitespace first (the ``\\n\\n`` after
``</think>``, which the budget may have injected), and last (before the end of generation). A
forced Hermes call::

    root ::= ws call ws
    call ::= "<tool_call>" ws "{" space "\\"name\\"" space ":" space fn ws "</tool_call>"
    fn ::= fn-0
    fn-0 ::= "\\"get_current_weather\\"" space "," space "\\"arguments\\"" space ":" space
             args-0 space "}"
    args-0 ::= "{" space args-0-location-kv "}" space
    ...
    ws ::= [ \\t\\n]{0,4}

Under ``tool_choice`` auto, ``trigger_grammar`` gives the rest of a call after its begin marker
(``<tool_call>``), for a lazy ``Constraint`` whose trigger is that marker.

The grammar travels to the engine as text in ``engine.protocol.Constraint``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from llama_cpp.llama_grammar import SchemaConverter

from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ResponseFormat, ToolSpec
from thinkserve.tools.formats import CallFormat

WS = "[ \\t\\n]{0,4}"
MAX_REPEAT = 1024
"""The largest count a schema may ask to be repeated (``minItems``, ``maxLength``...): llama.cpp
expands a repetition into copies of its rule when it parses the grammar."""
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
MAX_PARALLEL = 8
"""Calls a forced parallel answer may hold."""


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# JSON forbids raw control characters in strings; the Python port's ``char`` rule lets them through
# (llama.cpp's own converter excludes them, as here).
JSON_CHAR = '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})'


def _converter() -> Any:
    """The converter, untyped (llama-cpp-python ships no annotations for it)."""
    converter: Any = SchemaConverter
    return converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)


def _format(converter: Any) -> str:
    if "char" in converter._rules:
        converter._rules["char"] = JSON_CHAR
    return str(converter.format_grammar())


def _visit(converter: Any, schema_text: str, name: str, param: str) -> str:
    """Add ``schema``'s rules under ``name``; an object is the default (``{}``: no arguments)."""
    schema: dict[str, Any] = json.loads(schema_text)
    _check_counts(schema, param)
    if not schema:
        # "{}": the function takes no arguments (Model Studio), so they are an empty object.
        schema = {"type": "object", "properties": {}, "additionalProperties": False}
    elif schema.get("type") is None and not set(schema) & {
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "enum",
        "const",
    }:
        schema = {"type": "object", **schema}
    try:
        resolved = converter.resolve_refs(schema, "input")
        return str(converter.visit(resolved, name))
    except Exception as exc:  # the converter raises plain Exceptions (and asserts) on what it lacks
        raise InvalidParameter(f"The JSON Schema cannot be enforced: {exc}", param=param) from exc


def _check_counts(value: object, param: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _COUNTS and isinstance(item, int | float) and item > MAX_REPEAT:
                raise InvalidParameter(
                    f"The JSON Schema cannot be enforced: {key} above {MAX_REPEAT}.", param=param
                )
            _check_counts(item, param)
    elif isinstance(value, list):
        for item in value:
            _check_counts(item, param)


def json_grammar(response_format: ResponseFormat) -> str:
    """Any JSON object (``json_object``) or an instance of the schema (``json_schema``)."""
    converter = _converter()
    rule = _visit(converter, response_format.schema or '{"type": "object"}', "answer", "response_format")
    converter._add_rule("ws", WS)
    converter._add_rule("root", f"ws {rule}")
    return _format(converter)


def call_grammar(fmt: CallFormat, tools: Sequence[ToolSpec], *, only: str | None, parallel: bool) -> str:
    """One call (of ``only``, or of any tool), or with ``parallel`` one to ``MAX_PARALLEL`` calls,
    in the family's own format."""
    converter = _functions(fmt, [t for t in tools if only is None or t.name == only])
    call = converter._add_rule("call", f"{_literal(fmt.call_begin)} {_body(fmt)}")
    calls = f"{call} (ws {call}){{0,{MAX_PARALLEL - 1}}}" if parallel else call
    if fmt.section_begin and fmt.section_end:
        calls = f"{_literal(fmt.section_begin)} {calls} {_literal(fmt.section_end)}"
    converter._add_rule("root", f"ws {calls} ws")
    return _format(converter)


def trigger_grammar(fmt: CallFormat, tools: Sequence[ToolSpec], *, parallel: bool) -> str:
    """What may follow the family's call marker (``fmt.call_begin``, the trigger of a lazy
    ``Constraint``) once the model has written it under ``tool_choice`` auto: the rest of one
    call of an offered tool, with ``parallel`` up to ``MAX_PARALLEL`` calls in all, then the
    section's end marker (DeepSeek, Kimi) and the end of generation. A Hermes one::

        root ::= ws "{" space "\\"name\\"" space ":" space fn ws "</tool_call>"
                 (ws call){0,7} ws
        call ::= "<tool_call>" ws "{" space "\\"name\\"" space ":" space fn ws "</tool_call>"
    """
    converter = _functions(fmt, tools)
    body = _body(fmt)
    if parallel:
        call = converter._add_rule("call", f"{_literal(fmt.call_begin)} {body}")
        body = f"{body} (ws {call}){{0,{MAX_PARALLEL - 1}}}"
    if fmt.section_end:
        body = f"{body} ws {_literal(fmt.section_end)}"
    converter._add_rule("root", f"{body} ws")
    return _format(converter)


def bare_call_pattern(tools: Sequence[ToolSpec]) -> str:
    """The start of a Hermes call written bare as the whole answer, without its tags, as small
    models write them (the tool stage reads it as a call): ``{"name": "<an offered tool>"``. As
    a ``Constraint.start_pattern`` beside the ``<tool_call>`` trigger, its first group, from
    the ``{`` on, is fed to ``trigger_grammar``'s grammar, which then holds the arguments to the
    tool's schema and closes the call with ``</tool_call>`` (which the stage reads as its end)::

        \\s*(\\{\\s*"name"\\s*:\\s*"(?:get_current_time|get_current_weather)")

    llama.cpp's Hermes handler has the same trigger, for the same reason. Only the name of an
    offered tool fires it, so an answer that is JSON of its own stays free."""
    names = "|".join(re.escape(tool.name) for tool in tools)
    return r'\s*(\{\s*"name"\s*:\s*"(?:' + names + r')")'


def _functions(fmt: CallFormat, tools: Sequence[ToolSpec]) -> Any:
    """A converter holding ``fn``, the name and the arguments of any of ``tools``, and ``ws``."""
    converter = _converter()
    choices: list[str] = []
    for i, tool in enumerate(tools):
        args = _visit(converter, tool.parameters, f"args-{i}", "tools")
        choices.append(converter._add_rule(f"fn-{i}", _function(fmt, tool.name, args)))
    converter._add_rule("ws", WS)
    converter._add_rule("fn", " | ".join(choices))
    return converter


def _function(fmt: CallFormat, name: str, args: str) -> str:
    """The name and the arguments of one function, in ``fmt``."""
    if fmt.name == "hermes":
        head = _literal(json.dumps(name))
        return f'{head} space "," space "\\"arguments\\"" space ":" space {args} space "}}"'
    if fmt.name == "deepseek":
        return f'{_literal(name)} "\\n```json\\n" {args} "\\n```"'
    return f'{_literal("functions." + name)} ":" [0-9] "<|tool_call_argument_begin|>" {args}'


def _body(fmt: CallFormat) -> str:
    """A call after its begin marker, up to its end marker."""
    end = _literal(fmt.call_end)
    if fmt.name == "hermes":
        return f'ws "{{" space "\\"name\\"" space ":" space fn ws {end}'
    if fmt.name == "deepseek":
        return f'"function" "<｜tool▁sep｜>" fn {end}'
    return f"fn {end}"
