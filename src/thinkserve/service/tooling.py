"""What a request's tools and ``response_format`` do to its generation (imports core, engine,
catalogue, thinking, tools).

``check`` raises the client's errors once the service knows whether the request thinks;
``plan_tools`` then says which tools the template renders, which format the answer's calls are
parsed in, and the grammar (if any) that constrains the answer:

- ``tool_choice`` ``auto``: tools offered, calls parsed, nothing constrained;
- ``none``: as if no tools were sent (Model Studio);
- ``required`` or a named function: the answer is constrained to one call (``parallel_tool_calls``:
  one or more) of that function or of any offered one;
- ``response_format`` json: the answer is constrained to JSON.

While thinking, Model Studio refuses forced calls and JSON mode; with thinkserve's
``constrain_after_thinking`` (request option or per-model config) the reasoning stays free and only
the answer after ``</think>`` is constrained.

Server-side built-in tools (the seam): a built-in tool, such as a web search, is a ``ToolSpec`` the
service adds to ``PlannedTools.tools`` itself, with its name in ``PlannedTools.builtin``; the
template renders it like the caller's, and the answer's calls are parsed the same way, but kept
from the client. ``tools.builtin`` describes the whole loop: offer, recognise, run, continue.
"""

from __future__ import annotations

from dataclasses import dataclass

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ChatRequest, ToolSpec
from thinkserve.engine.protocol import Constraint
from thinkserve.thinking.chat_format import ChatFormat
from thinkserve.thinking.parser import THINK_END
from thinkserve.tools import grammar
from thinkserve.tools.formats import CallFormat, format_of
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
    """Names among ``tools`` that the server runs itself (``tools.builtin``)."""

    @classmethod
    def nothing(cls) -> PlannedTools:
        return cls((), None, False, None)

    def stage(self) -> ToolCallStage | None:
        if self.fmt is None:
            return None
        names = frozenset(t.name for t in self.tools)
        return ToolCallStage(self.fmt, parallel=self.parallel, builtin=self.builtin, names=names)


def plan_tools(request: ChatRequest, chat: ChatFormat) -> PlannedTools:
    """The tools a validated request offers, how its calls are read, and its grammar."""
    if request.response_format is not None:
        return PlannedTools((), None, False, grammar.json_grammar(request.response_format))
    if not request.tools or request.tool_choice.mode == "none":
        return PlannedTools((), None, False, None)
    if not chat.knows_tools:
        raise InvalidParameter(NO_TOOLS_IN_TEMPLATE, param="tools")
    fmt = format_of(chat.tokenizer.chat_template)
    choice = request.tool_choice
    rules = None
    if choice.forced:
        rules = grammar.call_grammar(
            fmt, request.tools, only=choice.function, parallel=request.parallel_tool_calls
        )
    return PlannedTools(request.tools, fmt, request.parallel_tool_calls, rules)


def constraint(planned: PlannedTools, chat: ChatFormat, *, thinking: bool) -> Constraint | None:
    """The grammar, applied from the first token when the prompt is past any reasoning, else
    from the first token after ``</think>``."""
    if planned.grammar is None:
        return None
    if not thinking:
        return Constraint(planned.grammar)
    if chat.token_level:
        return Constraint(planned.grammar, after_token=chat.end_id)
    return Constraint(planned.grammar, after_text=THINK_END)
