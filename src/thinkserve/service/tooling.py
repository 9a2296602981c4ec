"""What a request's tools and ``response_format`` do to its generation (imports core, engine,
catalogue, thinking, tools).

``check`` raises the client's errors once the service knows whether the request thinks;
``plan_tools`` then says which tools the template renders, which format the answer's calls are
parsed in, and the grammar (if any) that constrains the answer:

- ``tool_choice`` ``auto``: tools offered, calls parsed; the answer is free until the model writes
  the family's call marker (``<tool_call>``), or begins a Hermes call bare (``{"name": "<an
  offered tool>"``), then constrained to the rest of a valid call of an offered tool (a lazy
  grammar: ``PlannedTools.trigger``, ``start_pattern``), and with ``parallel_tool_calls`` more
  whole calls, then the end;
- ``none``: as if no tools were sent (Model Studio);
- ``required`` or a named function: the answer is constrained to one call (``parallel_tool_calls``:
  one or more) of that function or of any offered one;
- ``response_format`` json: the answer is constrained to JSON.

While thinking, Model Studio refuses forced calls and JSON mode; with thinkserve's
``constrain_after_thinking`` (request option or per-model config) the reasoning stays free and only
the answer after ``</think>`` is constrained.

Server-side built-in tools (``tools.builtin``, e.g. the web search the model calls itself): their
``ToolSpec`` joins ``PlannedTools.tools`` after the caller's, with their names in
``PlannedTools.builtin``; the template renders them like the caller's, and the answer's calls are
parsed the same way, but kept from the client. ``offers_builtins`` says when a request can have
them: a template that renders tools, an answer that is not constrained (no JSON mode, no forced
call). ``tool_choice: "none"`` hides the caller's tools only: it speaks of the functions the
caller sent, while ``enable_search`` asks for the search (Model Studio's search plugin does not
depend on function calling either). A built-in tool no longer ``offered`` (its calls used up) is
left out of the prompt but still recognised, so that a call of it never reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ChatRequest, ToolSpec
from thinkserve.engine.protocol import Constraint
from thinkserve.thinking.chat_format import ChatFormat
from thinkserve.thinking.parser import THINK_END
from thinkserve.tools import grammar
from thinkserve.tools.builtin import BuiltinTool
from thinkserve.tools.formats import HERMES, CallFormat, format_of
from thinkserve.tools.stage import ToolCallStage

JSON_WORD = (
    "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
)
FORCED_WHILE_THINKING = (
    "The tool_choice parameter does not support being set to required or object in thinking mode"
)
JSON_WHILE_THINKING = "Json mode response is not supported when enable_thinking is true"
NO_TOOLS_IN_TEMPLATE = "The chat template of this model's file has no place for tools."
TOOLS_WITH_JSON = 'response_format cannot be used together with tools: send tool_choice "none" or no tools.'

log = logging.getLogger(__name__)


def constrains_after_thinking(spec: ModelSpec, request: ChatRequest) -> bool:
    flag = request.constrain_after_thinking
    return spec.constrain_after_thinking if flag is None else flag


def check(spec: ModelSpec, request: ChatRequest, *, thinking: bool) -> None:
    """Tool and JSON-mode rules that depend on the model and on the thinking decision."""
    offered = bool(request.tools) and request.tool_choice.mode != "none"
    if request.response_format is not None and offered:
        raise InvalidParameter(TOOLS_WITH_JSON, param="response_format")
    free = not thinking or constrains_after_thinking(spec, request)
    if request.response_format is not None and not free:
        raise InvalidParameter(JSON_WHILE_THINKING, param="response_format")
    if offered and request.tool_choice.forced and not free:
        raise InvalidParameter(FORCED_WHILE_THINKING, param="tool_choice")
    check_json_word(request)


def check_json_word(request: ChatRequest) -> None:
    """Model Studio: ``json_object`` needs the word "json" (any case) in a system or user turn."""
    fmt = request.response_format
    if fmt is None or fmt.schema is not None:
        return
    if not any(m.role in ("system", "user") and "json" in m.content.lower() for m in request.messages):
        raise InvalidParameter(JSON_WORD, param="messages")


@dataclass(frozen=True, slots=True)
class PlannedTools:
    tools: tuple[ToolSpec, ...]
    """What the template renders (empty: no tools offered)."""
    fmt: CallFormat | None
    """The format calls are parsed in (None: the answer is not parsed for calls)."""
    parallel: bool
    grammar: str | None
    """GBNF the answer is constrained to, if any."""
    builtin: frozenset[str] = frozenset()
    """Names of the tools the server runs itself (``tools.builtin``): offered among ``tools``, or
    no longer offered and still kept from the client."""
    trigger: str | None = None
    """With a grammar: the text in the answer after which it applies (``Constraint.trigger``)."""
    start_pattern: str | None = None
    """With a grammar: the start of an answer from which it applies (``Constraint.start_pattern``).
    Neither: the grammar applies from the answer's start."""

    @classmethod
    def nothing(cls) -> PlannedTools:
        return cls((), None, False, None)

    def stage(self) -> ToolCallStage | None:
        if self.fmt is None:
            return None
        names = frozenset(t.name for t in self.tools)
        return ToolCallStage(self.fmt, parallel=self.parallel, builtin=self.builtin, names=names)


def offers_builtins(request: ChatRequest, chat: ChatFormat) -> bool:
    """Whether built-in tools can be offered to ``request``'s model: its template renders tools and
    nothing constrains the answer to JSON or to a caller's call."""
    return chat.knows_tools and request.response_format is None and not request.tool_choice.forced


def plan_tools(request: ChatRequest, chat: ChatFormat, builtins: Sequence[BuiltinTool] = ()) -> PlannedTools:
    """The tools a validated request offers, how its calls are read, and its grammar; ``builtins``
    (checked with ``offers_builtins``) are offered after the caller's while ``offered``."""
    if request.response_format is not None:
        return PlannedTools((), None, False, grammar.json_grammar(request.response_format))
    caller = request.tools if request.tool_choice.mode != "none" else ()
    if not caller and not builtins:
        return PlannedTools((), None, False, None)
    if not chat.knows_tools:
        raise InvalidParameter(NO_TOOLS_IN_TEMPLATE, param="tools")
    fmt = format_of(chat.tokenizer.chat_template)
    choice = request.tool_choice
    parallel = request.parallel_tool_calls
    offered = caller + tuple(b.spec for b in builtins if b.offered)
    names = frozenset(b.spec.name for b in builtins)
    if choice.forced:
        rules = grammar.call_grammar(fmt, caller, only=choice.function, parallel=parallel)
        return PlannedTools(offered, fmt, parallel, rules, names)
    # Every tool whose calls are read may be called, a built-in one no longer offered included
    # (its call is still recognised): the grammar holds a call to its tool's schema, no more.
    known = caller + tuple(b.spec for b in builtins)
    lazy = _trigger_grammar(fmt, known, parallel=parallel)
    if lazy is None:
        return PlannedTools(offered, fmt, parallel, None, names)
    # A bare call is read as one of an offered tool only (``ToolCallStage``).
    bare = grammar.bare_call_pattern(offered) if fmt is HERMES and offered else None
    return PlannedTools(offered, fmt, parallel, lazy, names, trigger=fmt.call_begin, start_pattern=bare)


def _trigger_grammar(fmt: CallFormat, tools: tuple[ToolSpec, ...], *, parallel: bool) -> str | None:
    """The auto-mode grammar, or None where a schema cannot be enforced: auto mode took any valid
    schema before it constrained calls, and still does (its calls then go unconstrained)."""
    try:
        return grammar.trigger_grammar(fmt, tools, parallel=parallel)
    except InvalidParameter as exc:
        log.info("tool calls left unconstrained: %s", exc.message)
        return None


def constraint(planned: PlannedTools, chat: ChatFormat, *, thinking: bool) -> Constraint | None:
    """The grammar, applied from the first token when the prompt is past any reasoning, else
    from the first token after ``</think>``; lazy, only once the answer fires it (never the
    reasoning)."""
    if planned.grammar is None:
        return None
    after_token = after_text = None
    if thinking and chat.token_level:
        after_token = chat.end_id
    elif thinking:
        after_text = THINK_END
    return Constraint(
        planned.grammar,
        after_token=after_token,
        after_text=after_text,
        trigger=planned.trigger,
        start_pattern=planned.start_pattern,
    )
