"""How each model family writes tool calls in its answer, told apart by its chat template
(imports nothing from thinkserve).

Three families, as their chat templates and vLLM's parsers describe them::

    hermes   (Qwen2.5, Qwen3, QwQ)
        <tool_call>
        {"name": "get_current_weather", "arguments": {"location": "Hangzhou"}}
        </tool_call>
    deepseek (DeepSeek-V3 / R1-0528)
        <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_current_weather
        ```json
        {"location": "Hangzhou"}
        ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>
    kimi     (Kimi-K2; the call id is "functions.NAME:IDX")
        <|tool_calls_section_begin|><|tool_call_begin|>functions.get_current_weather:0
        <|tool_call_argument_begin|>{"location": "Hangzhou"}<|tool_call_end|><|tool_calls_section_end|>

A ``CallFormat`` says where a call starts, where its header (the name) ends and its arguments
begin, and what may trail the arguments before the call's end marker (Hermes: the ``}`` that
closes the outer object; DeepSeek: the closing code fence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FormatName = Literal["hermes", "deepseek", "kimi"]


def partial(marker: str) -> str:
    """A regex matching any prefix of ``marker`` (the empty one included)."""
    return "(?:" + "|".join(re.escape(marker[:i]) for i in range(len(marker), 0, -1)) + ")?"


@dataclass(frozen=True, slots=True)
class CallFormat:
    name: FormatName
    call_begin: str
    call_end: str
    header: re.Pattern[str]
    """Matched at the start of a call's body: group ``name`` (and ``id`` where the format names
    its calls); the arguments start where the match ends."""
    closer: str
    """A regex for what may follow the arguments before ``call_end`` (besides whitespace)."""
    section_begin: str | None = None
    section_end: str | None = None

    @property
    def tail(self) -> re.Pattern[str]:
        """What may be held back at the end of the arguments seen so far: whitespace, the closer
        and a prefix of the end marker."""
        return re.compile(r"\s*(?:" + self.closer + r")?\s*" + partial(self.call_end) + r"\Z")

    @property
    def final_tail(self) -> re.Pattern[str]:
        return re.compile(r"\s*(?:" + self.closer + r")?\s*\Z")

    @property
    def markers(self) -> tuple[str, ...]:
        """Texts this format reads in the answer: the section markers (dropped) and the start of a call."""
        return tuple(m for m in (self.section_begin, self.section_end, self.call_begin) if m)


HERMES = CallFormat(
    name="hermes",
    call_begin="<tool_call>",
    call_end="</tool_call>",
    header=re.compile(r'\s*\{\s*"name"\s*:\s*"(?P<name>[^"\\]*)"\s*,\s*"arguments"\s*:\s*'),
    closer=r"\}",
)
DEEPSEEK = CallFormat(
    name="deepseek",
    call_begin="<｜tool▁call▁begin｜>",
    call_end="<｜tool▁call▁end｜>",
    header=re.compile(r"\s*(?:function)?<｜tool▁sep｜>(?P<name>[^\n<]+)\n\s*```(?:json)?[ \t]*\n"),
    closer=r"`{1,3}",
    section_begin="<｜tool▁calls▁begin｜>",
    section_end="<｜tool▁calls▁end｜>",
)
KIMI = CallFormat(
    name="kimi",
    call_begin="<|tool_call_begin|>",
    call_end="<|tool_call_end|>",
    header=re.compile(
        r"\s*(?P<id>functions\.(?P<name>[A-Za-z0-9_\-.]+):\d+)\s*<\|tool_call_argument_begin\|>\s*"
    ),
    closer=r"(?!)",
    section_begin="<|tool_calls_section_begin|>",
    section_end="<|tool_calls_section_end|>",
)
FORMATS: dict[FormatName, CallFormat] = {"hermes": HERMES, "deepseek": DEEPSEEK, "kimi": KIMI}


def format_of(template: str | None) -> CallFormat:
    """The family's format, read off its chat template; Hermes (Qwen's) when it names none, which
    is also what thinkserve renders for templates that know no tools (``thinking.chat_format``)."""
    text = template or ""
    if "tool▁call" in text:
        return DEEPSEEK
    if "<|tool_call_begin|>" in text or "tool_calls_section" in text:
        return KIMI
    return HERMES
