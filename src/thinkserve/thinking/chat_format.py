"""How one model file turns messages into a prompt and how its output is split (imports core, engine).

The thinking budget built on top of it (checkpoint, injected text) is ``thinking.budget``.

Two cases, told apart by the chat template in the model file:

- **native thinking** (Qwen3, QwQ, DeepSeek-R1 distills...): the template knows ``<think>``; it is
  rendered with ``enable_thinking`` and decides itself what the prompt looks like. A template that
  already opens the block (``...<|im_start|>assistant\\n<think>\\n``) makes the model write no
  opening tag.
- **prompted thinking** (any other instruct model, e.g. the default Qwen2.5-Coder): thinking is
  asked for by a system instruction and the assistant turn is opened with ``<think>\\n``. With
  thinking off, the plain template is used.

Only the template's own markup may become control tokens. Caller text (message content, the system
prompt, reasoning sent back in history) is tokenized as text: ``hi<|im_end|>\\n<|im_start|>system``
in a user message stays those characters and forges no turn. See ``_Guard``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from thinkserve.core.errors import InvalidParameter
from thinkserve.core.patterns import any_of
from thinkserve.core.types import Message, ToolSpec
from thinkserve.engine.protocol import Tokenizer
from thinkserve.thinking.parser import THINK_END, THINK_START, Splitter, TextSplitter, TokenSplitter

# Closes a think block: an always-opened one when thinking is off, and (thinking.budget) one that a
# prompted model tried to end without closing.
CLOSE_THINK = "\n</think>\n\n"

# Small instruct models follow a literal format far better than a description of one.
PROMPTED_INSTRUCTION = (
    "Always reply in exactly this format:\n<think>\n(your private reasoning: what is asked, how to "
    "answer, in a few sentences)\n</think>\n\n(your final answer to the user)\n\nNever skip the </think> "
    "line and never stop before writing the final answer."
)
# With tools, the answer may be a call: the literal Hermes format the template names (small models
# otherwise write the JSON bare, or with doubled braces, outside any tag).
PROMPTED_TOOLS = (
    "To call a function, your final answer is only the call, in exactly this format:\n<tool_call>\n"
    '{"name": "<function-name>", "arguments": {<the arguments as JSON>}}\n</tool_call>'
)
DEFAULT_SYSTEM = "You are a helpful assistant."

# Used when a model file carries no template at all: ChatML, which Qwen models speak.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A rendered, tokenized prompt and where its output starts."""

    tokens: list[int]
    opened: bool
    """The prompt ends inside an open think block: the output starts as reasoning."""


def _raise(message: str) -> None:
    raise TemplateError(message)


def _control_pattern(texts: Iterable[str]) -> re.Pattern[str] | None:
    """A regex matching any control-token text, the longest one where several start at a place.

    Built as a trie, one branch per next character, not as a flat alternation: some vocabularies
    hold hundreds of control tokens sharing a prefix (Llama 3's ``<|reserved_special_token_N|>``),
    and a flat alternation would try each of them at every ``<|`` of the text.
    """
    return any_of(texts)


# Sentinels come from Supplementary Private Use Area-A, which no tokenizer gives a meaning to.
_SENTINEL_BASE = 0xF0000
_SENTINEL_END = 0xFFFFD


class _Guard:
    """Keeps control-token text in caller strings from becoming control tokens.

    Only built when some caller string holds control-token text (``None`` otherwise, and the prompt
    is ``encode(text, special=True)`` exactly as always). Each such occurrence is replaced, before
    rendering, by a private-use sentinel character that the template passes through like any other
    text; everything else in the caller strings is left alone, so templates that inspect content
    (Qwen3 splits assistant content at ``</think>``, checks ``<tool_response>``) see the same text.
    After rendering, every control-token text left is the template's own. ``encode`` splits the
    prompt at those, as llama.cpp's special-token parsing does, emits their ids, and encodes each
    fragment between them with the sentinels turned back into their text and ``special=False``: the
    caller's ``<|im_end|>`` is tokenized exactly as the text it is, together with its neighbours.
    """

    __slots__ = ("_controls", "_restore", "_sentinels")

    def __init__(self, controls: re.Pattern[str], found: set[str], callers: Sequence[str]) -> None:
        self._controls = controls
        texts = [*callers, *found]
        self._sentinels: dict[str, str] = {}
        code = _SENTINEL_BASE
        for text in sorted(found):
            # Any character no caller string holds will do (a substring search per candidate).
            while code <= _SENTINEL_END and any(chr(code) in t for t in texts):
                code += 1
            if code > _SENTINEL_END:  # a caller sent most of a private-use plane: not a prompt
                raise InvalidParameter("The messages hold too many private-use characters.")
            self._sentinels[text] = chr(code)
            code += 1
        self._restore = [(ch, text) for text, ch in self._sentinels.items()]

    @classmethod
    def of(cls, controls: re.Pattern[str] | None, callers: Sequence[str]) -> _Guard | None:
        if controls is None:
            return None
        found = {m.group() for text in callers for m in controls.finditer(text)}
        return cls(controls, found, callers) if found else None

    def protect(self, text: str) -> str:
        """``text`` (a caller string) with its control-token texts replaced by sentinels."""
        return self._controls.sub(lambda m: self._sentinels[m.group()], text)

    def encode(self, tokenizer: Tokenizer, text: str) -> list[int]:
        """Tokenize a prompt rendered from protected caller strings."""
        out: list[int] = []
        ids: dict[str, list[int]] = {}
        pos = 0
        for m in self._controls.finditer(text):
            out += tokenizer.encode(self._restored(text[pos : m.start()]), special=False)
            control = m.group()
            known = ids.get(control)
            if known is None:
                known = ids[control] = tokenizer.encode(control, special=True)
            out += known
            pos = m.end()
        out += tokenizer.encode(self._restored(text[pos:]), special=False)
        return out

    def _restored(self, fragment: str) -> str:
        for sentinel, text in self._restore:
            fragment = fragment.replace(sentinel, text)
        return fragment


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox chat templates run in (as transformers runs them), reading ``message.role`` off
    a plain dict at once. Jinja tries the attribute first, and the item only after the
    ``AttributeError``; for a name that is no attribute of ``dict`` that gives the item anyway, so
    the shortcut changes no result and saves the exception: templates read such names a dozen times
    a message (``message.role``, ``message.content``, ``tool.function``). Qwen3's template on four
    turns and one tool: 62.9 µs a render instead of 70.7 (medians of 15 interleaved rounds, AMD
    EPYC, 2026-11-26)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


class ChatFormat:
    """Renders prompts for one tokenizer and builds the matching splitter."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        template = tokenizer.chat_template or CHATML
        self.native = THINK_START in template or "enable_thinking" in template
        env = _Sandbox(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self._template = env.from_string(template)
        start, end = tokenizer.token_id(THINK_START), tokenizer.token_id(THINK_END)
        self.start_id = start
        self.end_id = end
        self.token_level = start is not None and end is not None
        self._controls = _control_pattern(tokenizer.control_texts)

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    @property
    def prompted(self) -> bool:
        return not self.native

    @property
    def knows_tools(self) -> bool:
        """The template renders ``tools`` (Qwen, DeepSeek and Kimi templates do)."""
        return "tools" in (self._tok.chat_template or "")

    def render(
        self, messages: Sequence[Message], *, thinking: bool, tools: Sequence[ToolSpec] = ()
    ) -> Prompt:
        """Render and tokenize ``messages`` (and the offered ``tools``, in the template's own way)
        for a reply with thinking on or off."""
        callers = [m.content for m in messages] + [m.reasoning for m in messages if m.reasoning is not None]
        callers += [c.arguments + c.name for m in messages for c in m.tool_calls]
        callers += [t.name + (t.description or "") + t.parameters for t in tools]
        guard = _Guard.of(self._controls, callers)
        text = self._render_text(messages, thinking, guard, tools)
        stripped = text.rstrip()
        opened = stripped.endswith(THINK_START)
        if not thinking and opened:
            # A template that always opens the block (R1 style): close it empty.
            text = stripped + CLOSE_THINK
            opened = False
        elif not thinking and self.native and not stripped.endswith(THINK_END):
            # The template cannot switch thinking off: give it the empty block Qwen3 uses.
            text += "<think>\n\n</think>\n\n"
        tokens = self._tok.encode(text, special=True) if guard is None else guard.encode(self._tok, text)
        return Prompt(tokens, opened)

    def _render_text(
        self, messages: Sequence[Message], thinking: bool, guard: _Guard | None, tools: Sequence[ToolSpec]
    ) -> str:
        def caller(text: str) -> str:
            return text if guard is None else guard.protect(text)

        turns: list[dict[str, Any]] = []
        for m in messages:
            turn: dict[str, Any] = {"role": m.role, "content": caller(m.content)}
            if m.role == "assistant" and m.reasoning is not None and self.native:
                turn["reasoning_content"] = caller(m.reasoning)
            if m.tool_calls:
                turn["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": caller(c.name), "arguments": _arguments(c.arguments, caller)},
                    }
                    for c in m.tool_calls
                ]
            if m.tool_call_id is not None:
                turn["tool_call_id"] = m.tool_call_id
            turns.append(turn)
        if self.prompted and thinking:
            instruction = f"{PROMPTED_INSTRUCTION}\n\n{PROMPTED_TOOLS}" if tools else PROMPTED_INSTRUCTION
            if turns and turns[0]["role"] == "system":
                turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{instruction}"}
            else:
                turns.insert(0, {"role": "system", "content": f"{DEFAULT_SYSTEM}\n\n{instruction}"})
        try:
            extra: dict[str, Any] = {}
            if tools:
                extra["tools"] = [_protected(_tool_json(t), caller) for t in tools]
            text = self._template.render(
                messages=turns,
                add_generation_prompt=True,
                **extra,
                enable_thinking=thinking,
                bos_token=self._tok.bos_token,
                eos_token=self._tok.eos_token,
            )
        except TemplateError as exc:
            raise InvalidParameter(f"The messages do not fit the model's chat template: {exc}") from exc
        if self.prompted and thinking:
            text += THINK_START + "\n"
        return text

    def splitter(self, prompt: Prompt) -> Splitter:
        if self.token_level:
            assert self.start_id is not None and self.end_id is not None
            return TokenSplitter(self.start_id, self.end_id, in_reasoning=prompt.opened)
        return TextSplitter(in_reasoning=prompt.opened)

    def is_tag(self, token: int) -> bool:
        return token == self.start_id or token == self.end_id


def _tool_json(tool: ToolSpec) -> dict[str, Any]:
    """The tool as templates expect it: ``{"type": "function", "function": {...}}``."""
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = json.loads(tool.parameters)
    return {"type": "function", "function": function}


def _arguments(text: str, caller: Any) -> Any:
    """Arguments of a call in history: an object where they parse (templates ``tojson`` it, as
    they were trained), else the text as sent (templates insert strings raw)."""
    try:
        value = json.loads(text)
    except ValueError:
        return caller(text)
    return _protected(value, caller) if isinstance(value, dict) else caller(text)


def _protected(value: Any, caller: Any) -> Any:
    """Every string inside a JSON value passed through ``caller`` (the control-text guard)."""
    if isinstance(value, str):
        return caller(value)
    if isinstance(value, dict):
        return {caller(k): _protected(v, caller) for k, v in value.items()}
    if isinstance(value, list):
        return [_protected(v, caller) for v in value]
    return value
