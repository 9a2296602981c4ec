"""The scripted engine's toy tokenizer: one token per character, plus the special tokens of a
Qwen3-style chat template as single tokens (imports nothing of thinkserve)::

    FakeTokenizer().encode("<think>hi") == [0x110000 + 16 + 2, ord("h") + 16, ord("i") + 16]

Like Qwen3's GGUF in llama.cpp, ``<|im_start|>``, ``<|im_end|>`` and ``<|endoftext|>`` are control
tokens (``encode(special=False)`` leaves them as characters) while the think tags are user-defined
tokens, parsed either way.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

SPECIALS = ("<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|endoftext|>")
CONTROLS = frozenset(("<|im_start|>", "<|im_end|>", "<|endoftext|>"))
_OFFSET = 16
_SPECIAL_BASE = 0x110000 + _OFFSET

FAKE_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{% if messages[0].role == 'system' %}{{ messages[0].content }}"
    "\n\n{% endif %}# Tools\n\n<tools>{% for t in tools %}{{ '\n' }}{{ t | tojson }}{% endfor %}"
    "{{ '\n' }}</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags.<|im_end|>{{ '\n' }}{% endif %}"
    "{% for m in messages %}{% if m.role == 'system' and tools and loop.first %}"
    "{% elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response>"
    "<|im_end|>{{ '\n' }}"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    '{% for c in m.tool_calls or [] %}{{ \'\n\' }}<tool_call>\n{"name": "{{ c.function.name }}", '
    '"arguments": {% if c.function.arguments is string %}{{ c.function.arguments }}'
    "{% else %}{{ c.function.arguments | tojson }}{% endif %}}\n</tool_call>{% endfor %}"
    "<|im_end|>{{ '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
"""A Qwen3-style template: ChatML turns, tools in Hermes style (``<tools>``, ``<tool_call>``,
``<tool_response>``), and the empty think block when thinking is off."""


class FakeTokenizer:
    """One token per character; the special tokens are single tokens."""

    def __init__(self, template: str | None = FAKE_TEMPLATE) -> None:
        self._template = template
        self._specials = {s: _SPECIAL_BASE + i for i, s in enumerate(SPECIALS)}
        self._names = {v: k for k, v in self._specials.items()}
        self._ends = frozenset((self._specials["<|im_end|>"], self._specials["<|endoftext|>"]))

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        out: list[int] = []
        i = 0
        while i < len(text):
            if text[i] == "<":
                hit = next((s for s in SPECIALS if text.startswith(s, i)), None)
                if hit is not None and (special or hit not in CONTROLS):
                    out.append(self._specials[hit])
                    i += len(hit)
                    continue
            out.append(ord(text[i]) + _OFFSET)
            i += 1
        return out

    def decode(self, tokens: Seq[int]) -> str:
        return "".join(self.piece(t) for t in tokens)

    def piece(self, token: int) -> str:
        return self._names.get(token) or chr(token - _OFFSET)

    def token_id(self, text: str) -> int | None:
        return self._specials.get(text)

    @property
    def control_texts(self) -> frozenset[str]:
        return CONTROLS

    @property
    def chat_template(self) -> str | None:
        return self._template

    @property
    def bos_token(self) -> str:
        return ""

    @property
    def eos_token(self) -> str:
        return "<|im_end|>"

    def is_end(self, token: int) -> bool:
        return token in self._ends
