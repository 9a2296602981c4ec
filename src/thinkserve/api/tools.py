"""Function-calling and structured-output fields shared by both dialects: ``tools``,
``tool_choice``, ``parallel_tool_calls``, assistant ``tool_calls`` in history, ``response_format``
and thinkserve's own ``thinkserve`` options (imports core).

Both dialects spell these the same way (the native API inside ``parameters``)::

    "tools": [{"type": "function", "function": {"name": "get_current_weather",
               "description": "...", "parameters": {"type": "object", "properties": {...}}}}]
    "tool_choice": "auto" | "none" | "required" | {"type": "function", "function": {"name": "..."}}
    "response_format": {"type": "json_object"}
                     | {"type": "json_schema", "json_schema": {"name": "...", "schema": {...}}}
    "thinkserve": {"constrain_after_thinking": true}

Every bad definition is an ``InvalidParameter`` (400 in the caller's dialect).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ResponseFormat, ToolCall, ToolChoice, ToolSpec

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
RESERVED = frozenset({"search"})
"""Model Studio refuses user tools named like its built-in ones: "Tool names are not allowed to be
[search]"."""
OUR_OPTIONS = frozenset({"constrain_after_thinking"})


def _bad(message: str, param: str) -> InvalidParameter:
    return InvalidParameter(message, param=param)


def _schema(value: object, where: str, param: str) -> str:
    """A JSON Schema object as JSON text, its keys in the caller's order: the chat template renders
    it as the caller wrote it, as vLLM and Hugging Face's ``apply_chat_template`` do; anything else
    is refused."""
    if not isinstance(value, dict):
        raise _bad(f"{where} must be a JSON Schema object.", param)
    try:
        jsonschema.validators.validator_for(value).check_schema(value)
    except SchemaError as exc:
        raise _bad(f"{where} is not a valid JSON Schema: {exc.message}", param) from exc
    except Exception as exc:  # e.g. a "$schema" that is not a string: still the caller's error
        raise _bad(f"{where} is not a valid JSON Schema.", param) from exc
    return json.dumps(value, ensure_ascii=False)


def parse_tools(raw: list[dict[str, Any]] | None) -> tuple[ToolSpec, ...]:
    """``tools`` -> specs: type ``function``, a name of letters, digits, ``_`` and ``-`` (at most
    64), an optional string description and JSON-schema ``parameters`` (default ``{}``)."""
    if not raw:
        return ()
    specs: list[ToolSpec] = []
    seen: set[str] = set()
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        if tool.get("type") != "function":
            raise _bad(f'{where}.type must be "function".', "tools")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _bad(f"{where}.function must be an object.", "tools")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{where}.function.name is required.", "tools")
        if not NAME.fullmatch(name):
            raise _bad(
                f"{where}.function.name must be 1 to 64 letters, digits, underscores or dashes.", "tools"
            )
        if name in RESERVED:
            raise _bad(f"Tool names are not allowed to be [{name}]", "tools")
        if name in seen:
            raise _bad(f"{where}.function.name {name!r} is used by another tool.", "tools")
        seen.add(name)
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"{where}.function.description must be a string.", "tools")
        parameters = _schema(function.get("parameters", {}), f"{where}.function.parameters", "tools")
        specs.append(ToolSpec(name, description, parameters))
    return tuple(specs)


def parse_tool_choice(raw: object, tools: Sequence[ToolSpec]) -> ToolChoice:
    """``tool_choice`` against the offered tools; a forced choice needs a tool to call."""
    if raw is None or raw == "auto":
        return ToolChoice()
    if raw == "none":
        return ToolChoice("none")
    if raw == "required":
        if not tools:
            raise _bad('tool_choice "required" needs tools.', "tool_choice")
        return ToolChoice("required")
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        name = raw["function"].get("name")
        if not isinstance(name, str):
            raise _bad("tool_choice.function.name is required.", "tool_choice")
        if name not in {t.name for t in tools}:
            raise _bad(f"tool_choice names the function {name!r}, which is not in tools.", "tool_choice")
        return ToolChoice("required", name)
    raise _bad(
        'tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}.',
        "tool_choice",
    )


def parse_calls(raw: list[dict[str, Any]] | None, index: int) -> tuple[ToolCall, ...]:
    """An assistant turn's ``tool_calls`` in history (``arguments`` as text; an object is accepted
    and written as JSON)."""
    if not raw:
        return ()
    calls: list[ToolCall] = []
    for j, call in enumerate(raw):
        where = f"messages[{index}].tool_calls[{j}]"
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _bad(f"{where}.function.name is required.", "messages")
        arguments = function.get("arguments", "")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments, ensure_ascii=False)
        if not isinstance(arguments, str):
            raise _bad(f"{where}.function.arguments must be a string.", "messages")
        call_id = call.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise _bad(f"{where}.id must be a string.", "messages")
        calls.append(ToolCall(call_id or "", function["name"], arguments))
    return tuple(calls)


def check_tool_turn(role: str, tool_call_id: str | None, index: int) -> str | None:
    """The ``tool_call_id`` of a turn: only tool turns carry one."""
    if tool_call_id is not None and role != "tool":
        raise _bad(f"messages[{index}].tool_call_id is only allowed on tool messages.", "messages")
    return tool_call_id


def parse_response_format(raw: dict[str, Any] | None) -> ResponseFormat | None:
    """``response_format``: ``text`` (None here), ``json_object`` or ``json_schema``."""
    if raw is None:
        return None
    kind = raw.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return ResponseFormat()
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict):
            raise _bad("response_format.json_schema is required for type json_schema.", "response_format")
        name = spec.get("name")
        if name is not None and (not isinstance(name, str) or not NAME.fullmatch(name)):
            raise _bad(
                "response_format.json_schema.name must be 1 to 64 letters, digits, underscores or dashes.",
                "response_format",
            )
        schema = spec.get("schema")
        if schema is None:
            raise _bad("response_format.json_schema.schema is required.", "response_format")
        return ResponseFormat(_schema(schema, "response_format.json_schema.schema", "response_format"))
    raise _bad('response_format.type must be "text", "json_object" or "json_schema".', "response_format")


def parse_options(raw: object) -> bool | None:
    """thinkserve's own namespace: ``{"constrain_after_thinking": bool}``."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("thinkserve must be an object.", "thinkserve")
    unknown = set(raw) - OUR_OPTIONS
    if unknown:
        raise _bad(f"Unknown thinkserve option: {sorted(unknown)[0]}", "thinkserve")
    value = raw.get("constrain_after_thinking")
    if value is not None and not isinstance(value, bool):
        raise _bad("thinkserve.constrain_after_thinking must be true or false.", "thinkserve")
    return value


def request_fields(
    *,
    tools: list[dict[str, Any]] | None,
    tool_choice: object,
    parallel_tool_calls: bool | None,
    response_format: dict[str, Any] | None,
    options: object,
) -> dict[str, Any]:
    """The ``ChatRequest`` fields of this module, from either dialect's wire values."""
    specs = parse_tools(tools)
    return {
        "tools": specs,
        "tool_choice": parse_tool_choice(tool_choice, specs),
        "parallel_tool_calls": bool(parallel_tool_calls),
        "response_format": parse_response_format(response_format),
        "constrain_after_thinking": parse_options(options),
    }
