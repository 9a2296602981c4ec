"""Split a model's output into reasoning and answer (imports nothing from thinkserve).

Two ways, one interface (``feed(token, text) -> list[Segment]`` then ``finish()``):

- ``TokenSplitter`` for tokenizers where ``<think>`` and ``</think>`` are single tokens (Qwen3,
  QwQ, DeepSeek-R1): tags are recognised by id, so text that merely *spells* a tag cannot fool it.
- ``TextSplitter`` otherwise: tags are found in the text, holding back a tail that could be the
  start of a tag split across chunks (``"...so 4.</th"`` + ``"ink>\\n\\nIt is 4"``).

Both produce what the model wrote, less the tags and the whitespace that templates put around
them::

    "<think>\\nThe user greets me.\\n</think>\\n\\nHello!"
    -> [Segment("reasoning", "The user greets me."), Segment("answer", "Hello!")]

Output that ends inside ``<think>`` (cut by ``max_tokens``) is all reasoning. When the template
already opened the think block in the prompt (R1, ``*-thinking-2507``, prompted thinking), start
with ``in_reasoning=True``: the model then writes no opening tag.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Literal

Channel = Literal["reasoning", "answer"]

THINK_START = "<think>"
THINK_END = "</think>"


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of text on one channel."""

    channel: Channel
    text: str


class _Emitter:
    """Drops the whitespace around the tags, so that neither channel starts with newlines and
    reasoning does not end with them (trailing whitespace is held until more text follows)."""

    __slots__ = ("_held", "_strip_next", "channel", "in_think", "opened")

    def __init__(self, in_reasoning: bool) -> None:
        self.in_think = in_reasoning
        self.opened = in_reasoning
        self.channel: Channel = "reasoning" if in_reasoning else "answer"
        self._strip_next = True
        self._held = ""

    def emit(self, text: str, out: list[Segment]) -> None:
        text = self.take(text)
        if not text:
            return
        if out and out[-1].channel == self.channel:
            out[-1] = Segment(self.channel, out[-1].text + text)
        else:
            out.append(Segment(self.channel, text))

    def take(self, text: str) -> str:
        """What of ``text`` goes out now on ``channel`` ("" for nothing)."""
        if self._strip_next:
            text = text.lstrip()
            if not text:
                return ""
            self._strip_next = False
        if self.channel == "reasoning":
            text = self._held + text
            body = text.rstrip()
            self._held = text[len(body) :]
            return body
        return text

    def open(self) -> None:
        self.in_think = True
        self.opened = True
        self.channel = "reasoning"
        self._strip_next = True

    def close(self) -> None:
        self.in_think = False
        self.channel = "answer"
        self._strip_next = True
        self._held = ""


class TokenSplitter:
    """Splits by the ids of the think tags."""

    def __init__(self, start_id: int, end_id: int, *, in_reasoning: bool = False) -> None:
        self._start = start_id
        self._end = end_id
        self._state = _Emitter(in_reasoning)

    @property
    def in_reasoning(self) -> bool:
        return self._state.in_think

    def feed(self, token: int, text: str) -> list[Segment]:
        out: list[Segment] = []
        state = self._state
        if token == self._start and not state.opened:
            state.open()
        elif token == self._end and state.in_think:
            state.close()
        elif text:
            state.emit(text, out)
        return out

    def finish(self) -> list[Segment]:
        return []

    def feed_run(
        self, tokens: Sequence[int], texts: Sequence[str], tags: Set[int]
    ) -> tuple[list[Segment], int]:
        """``feed`` of each token in turn, the segments joined by channel; and how many tokens
        were fed inside the think block, ``tags`` left out (the reasoning tokens)."""
        state = self._state
        start, end = self._start, self._end
        out: list[Segment] = []
        pieces: list[str] = []
        channel = state.channel
        reasoning = 0
        for token, text in zip(tokens, texts, strict=True):
            if state.in_think and token not in tags:
                reasoning += 1
            if token == start and not state.opened:
                state.open()
            elif token == end and state.in_think:
                state.close()
            elif text:
                piece = state.take(text)
                if piece:
                    if state.channel != channel:
                        if pieces:
                            out.append(Segment(channel, "".join(pieces)))
                        channel, pieces = state.channel, []
                    pieces.append(piece)
        if pieces:
            out.append(Segment(channel, "".join(pieces)))
        return out, reasoning


class TextSplitter:
    """Splits by tag text, holding back a possible partial tag at the end of each chunk."""

    def __init__(self, *, in_reasoning: bool = False, start: str = THINK_START, end: str = THINK_END) -> None:
        self._start_tag = start
        self._end_tag = end
        self._state = _Emitter(in_reasoning)
        self._pending = ""
        # Only leading whitespace may precede an opening tag; after real answer text a "<think>"
        # is just text.
        self._may_open = not in_reasoning
        # A model told its thinking is over (a closing tag injected for it) sometimes writes the
        # tag once more: a "</think>" right at the start of the answer is dropped.
        self._after_close = False

    @property
    def in_reasoning(self) -> bool:
        return self._state.in_think

    def feed(self, token: int, text: str) -> list[Segment]:
        del token
        out: list[Segment] = []
        self._pending += text
        self._drain(out, final=False)
        return out

    def finish(self) -> list[Segment]:
        out: list[Segment] = []
        self._drain(out, final=True)
        return out

    def feed_run(
        self, tokens: Sequence[int], texts: Sequence[str], tags: Set[int]
    ) -> tuple[list[Segment], int]:
        """As ``TokenSplitter.feed_run``."""
        out: list[Segment] = []
        reasoning = 0
        for token, text in zip(tokens, texts, strict=True):
            if self._state.in_think and token not in tags:
                reasoning += 1
            # One list: the emitter joins what follows on the same channel.
            self._pending += text
            self._drain(out, final=False)
        return out, reasoning

    def _drain(self, out: list[Segment], *, final: bool) -> None:
        state = self._state
        while self._pending:
            if self._may_open:
                stripped = self._pending.lstrip()
                if stripped.startswith(self._start_tag):
                    self._pending = stripped[len(self._start_tag) :]
                    self._may_open = False
                    state.open()
                    continue
                if not final and (not stripped or self._start_tag.startswith(stripped)):
                    return  # could still become "<think>"
                self._may_open = False
            if not state.in_think:
                if self._after_close:
                    stripped = self._pending.lstrip()
                    if stripped.startswith(self._end_tag):
                        self._pending = stripped[len(self._end_tag) :]
                        self._after_close = False
                        continue
                    if not final and self._end_tag.startswith(stripped):
                        return  # could still become a repeated "</think>"
                    self._after_close = False
                state.emit(self._pending, out)
                self._pending = ""
                return
            idx = self._pending.find(self._end_tag)
            if idx >= 0:
                state.emit(self._pending[:idx], out)
                self._pending = self._pending[idx + len(self._end_tag) :]
                state.close()
                self._after_close = True
                continue
            keep = 0 if final else _partial_suffix(self._pending, self._end_tag)
            cut = len(self._pending) - keep
            if cut:
                state.emit(self._pending[:cut], out)
            self._pending = self._pending[cut:]
            return


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


Splitter = TokenSplitter | TextSplitter
