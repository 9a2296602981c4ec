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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import Message
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


class ChatFormat:
    """Renders prompts for one tokenizer and builds the matching splitter."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        template = tokenizer.chat_template or CHATML
        self.native = THINK_START in template or "enable_thinking" in template
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self._template = env.from_string(template)
        start, end = tokenizer.token_id(THINK_START), tokenizer.token_id(THINK_END)
        self.start_id = start
        self.end_id = end
        self.token_level = start is not None and end is not None

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    @property
    def prompted(self) -> bool:
        return not self.native

    def render(self, messages: Sequence[Message], *, thinking: bool) -> Prompt:
        """Render and tokenize ``messages`` for a reply with thinking on or off."""
        text = self._render_text(messages, thinking)
        stripped = text.rstrip()
        opened = stripped.endswith(THINK_START)
        if not thinking and opened:
            # A template that always opens the block (R1 style): close it empty.
            text = stripped + CLOSE_THINK
            opened = False
        elif not thinking and self.native and not stripped.endswith(THINK_END):
            # The template cannot switch thinking off: give it the empty block Qwen3 uses.
            text += "<think>\n\n</think>\n\n"
        return Prompt(self._tok.encode(text, special=True), opened)

    def _render_text(self, messages: Sequence[Message], thinking: bool) -> str:
        turns: list[dict[str, Any]] = []
        for m in messages:
            turn: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.role == "assistant" and m.reasoning is not None and self.native:
                turn["reasoning_content"] = m.reasoning
            turns.append(turn)
        if self.prompted and thinking:
            if turns and turns[0]["role"] == "system":
                turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{PROMPTED_INSTRUCTION}"}
            else:
                turns.insert(0, {"role": "system", "content": f"{DEFAULT_SYSTEM}\n\n{PROMPTED_INSTRUCTION}"})
        try:
            text = self._template.render(
                messages=turns,
                add_generation_prompt=True,
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
