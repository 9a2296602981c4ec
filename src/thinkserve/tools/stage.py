"""The tool-call parser: answer text in, answer text and tool-call pieces out, as the model
writes them (imports core, thinking, tools.formats).

It runs on the answer only, after the think splitter: a ``<tool_call>`` written inside the
reasoning stays reasoning (vLLM lost calls both ways, its issues 17655 and 39056). A call is
streamed as it is written: its header (``ToolPiece(0, "call_...", "get_current_weather", "")``)
once the name is complete, then its arguments in pieces, holding back only what may turn out to
be the end of the call (``}`` + ``</tool_call>`` for Hermes)::

    '<tool_call>\\n{"name": "f", "arguments": {"a": 1}}\\n</tool_call>'
    -> ToolPiece(0, "call_...", "f", ""), ToolPiece(0, None, None, '{"a": 1'), ToolPiece(0, None, None, '}')

What a malformed call becomes (README "Function calling"):

- a block whose header cannot be read (no name) is given back as answer text, as written;
- a call whose arguments are not valid JSON, or that the output ends inside, is still a call:
  its arguments are the text the model wrote (Model Studio too says to validate them);
- text around calls is answer text; whitespace between calls is dropped;
- a Hermes call written bare as the whole answer, ``{"name": "<an offered tool>", "arguments":
  {...}}`` without its tags, is a call (small models write them so).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from thinkserve.core.ids import hex_id
from thinkserve.core.types import FinishReason, ToolCall
from thinkserve.thinking.parser import Segment
from thinkserve.tools.formats import HERMES, CallFormat, partial

HEADER_MAX = 1024
"""Characters of a call's header after which it is judged unreadable (given back as text)."""


BARE_HEADER_MAX = 256
"""Characters of an answer starting with ``{`` read before it is judged not to be a bare call."""


@dataclass(frozen=True, slots=True)
class ToolPiece:
    """A piece of tool call ``index``: its id and name first, then argument text."""

    index: int
    id: str | None
    name: str | None
    arguments: str


def new_call_id() -> str:
    """``call_`` and 22 hex digits, the shape of Model Studio's ids (``call_6596dafa2a6a46f7a217da``)."""
    return "call_" + hex_id()[:22]


class ToolCallStage:
    """Parses one answer; ``parallel`` False ends the generation after the first call.

    ``builtin`` names the server's own tools (``tools.builtin``): their calls are not streamed to
    the client but kept whole in ``builtin_calls``, and each one ends the generation (``ended`` is
    ``tool_calls``) so that the service can run it and continue the conversation.
    """

    def __init__(
        self,
        fmt: CallFormat,
        *,
        parallel: bool,
        new_id: Callable[[], str] = new_call_id,
        builtin: frozenset[str] = frozenset(),
        names: frozenset[str] = frozenset(),
    ) -> None:
        self._fmt = fmt
        # A Hermes call written bare, as the whole answer, without its tags (small models do):
        # looked for until the answer has shown anything else.
        self._bare = fmt is HERMES and bool(names)
        self._names = names
        self._parallel = parallel
        self._new_id = new_id
        self._builtin = builtin
        self.builtin_calls: list[ToolCall] = []
        self._hidden: list[str] | None = None  # id, name, arguments of a built-in call being read
        self._open = re.compile("|".join(re.escape(m) for m in fmt.markers))
        self._open_tail = re.compile("(?:" + "|".join(partial(m)[:-1] for m in fmt.markers) + r")\Z")
        self._tail = fmt.tail
        self._final_tail = fmt.final_tail
        self._state = "text"  # text | header | args
        self._buf = ""
        self._sent = ""  # arguments of the current call emitted so far
        self._started = False  # the current call's arguments have begun (leading whitespace dropped)
        self.calls = 0
        self.ended: FinishReason | None = None

    @property
    def called(self) -> bool:
        return self.calls > 0

    def feed(self, segments: list[Segment]) -> list[Segment | ToolPiece]:
        out: list[Segment | ToolPiece] = []
        for segment in segments:
            if self.ended is not None:
                break
            if segment.channel == "reasoning":
                out.append(segment)
                continue
            self._buf += segment.text
            self._run(out)
        return out

    def finish(self) -> list[Segment | ToolPiece]:
        """The output ended: what is held back goes out (an unclosed call is still a call)."""
        out: list[Segment | ToolPiece] = []
        if self.ended is not None:
            return out
        if self._state == "args":
            self._emit_args(self._final(self._buf), out)
            self._end_call()
        elif self._state == "header":
            self._unreadable(self._buf, out, closed=False)
        elif self._buf:
            self._text(self._buf, out)
        self._buf = ""
        return out

    # -- the state machine --------------------------------------------------------------------

    def _run(self, out: list[Segment | ToolPiece]) -> None:
        fmt = self._fmt
        while self.ended is None:
            if self._state == "text" and self._bare:
                if not self._bare_call(out):
                    return
                continue
            if self._state == "text":
                m = self._open.search(self._buf)
                if m is None:
                    hold = self._open_tail.search(self._buf)
                    cut = hold.start() if hold is not None and hold.group() else len(self._buf)
                    self._text(self._buf[:cut], out)
                    self._buf = self._buf[cut:]
                    return
                self._text(self._buf[: m.start()], out)
                self._buf = self._buf[m.end() :]
                if m.group() == fmt.call_begin:
                    self._state = "header"
                continue
            if self._state == "header":
                end = self._buf.find(fmt.call_end)
                head = fmt.header.match(self._buf)
                if head is not None and (end < 0 or head.end() <= end):
                    self._start_call(head.group("name"), head.groupdict().get("id"), out)
                    self._buf = self._buf[head.end() :]
                    self._state = "args"
                    continue
                if end >= 0:
                    body, self._buf = self._buf[:end], self._buf[end + len(fmt.call_end) :]
                    self._unreadable(body, out, closed=True)
                    continue
                if len(self._buf) > HEADER_MAX:
                    self._unreadable(self._buf, out, closed=False)
                    self._buf = ""
                return
            # args
            end = self._buf.find(fmt.call_end)
            if end < 0:
                self._stream_args(out)
                return
            body, self._buf = self._buf[:end], self._buf[end + len(fmt.call_end) :]
            self._emit_args(self._final(body), out)
            self._end_call()

    def _bare_call(self, out: list[Segment | ToolPiece]) -> bool:
        """At the start of the answer: a bare ``{"name": "<offered tool>", "arguments": ...}`` is a
        call (True: go on; False: wait for more text)."""
        text = self._buf.lstrip()
        if not text:
            return False
        head = HERMES.header.match(text)
        if head is not None and head.group("name") in self._names:
            self._bare = False
            self._start_call(head.group("name"), None, out)
            self._buf = text[head.end() :]
            self._state = "args"
            return True
        if head is None and text.startswith("{") and len(text) < BARE_HEADER_MAX:
            return False
        self._bare = False
        return True

    def _text(self, text: str, out: list[Segment | ToolPiece]) -> None:
        if self.calls and not text.strip():
            # The whitespace between calls is not answer text.
            return
        if text:
            self._bare = False
            out.append(Segment("answer", text))

    def _start_call(self, name: str, call_id: str | None, out: list[Segment | ToolPiece]) -> None:
        self._sent = ""
        self._started = False
        if name in self._builtin:
            self._hidden = [call_id or self._new_id(), name, ""]
            return
        out.append(ToolPiece(self.calls, call_id or self._new_id(), name, ""))

    def _stream_args(self, out: list[Segment | ToolPiece]) -> None:
        if not self._started:
            self._buf = self._buf.lstrip()
            if not self._buf:
                return
            self._started = True
        hold = self._tail.search(self._buf)
        cut = hold.start() if hold is not None else len(self._buf)
        if cut:
            piece = self._buf[:cut]
            self._buf = self._buf[cut:]
            self._emit_args(piece, out)

    def _final(self, rest: str) -> str:
        """The rest of the arguments once the call ended: less the trailing closer."""
        if not self._started:
            rest = rest.lstrip()
        m = self._final_tail.search(rest)
        return rest[: m.start()] if m is not None else rest

    def _emit_args(self, rest: str, out: list[Segment | ToolPiece]) -> None:
        if not rest:
            return
        self._sent += rest
        if self._hidden is not None:
            self._hidden[2] += rest
        else:
            out.append(ToolPiece(self.calls, None, None, rest))

    def _end_call(self) -> None:
        self._state = "text"
        if self._hidden is not None:
            self.builtin_calls.append(ToolCall(*self._hidden))
            self._hidden = None
            self.ended = "tool_calls"
            return
        self.calls += 1
        if not self._parallel:
            self.ended = "tool_calls"

    def _unreadable(self, body: str, out: list[Segment | ToolPiece], *, closed: bool) -> None:
        """A block whose header did not parse: a whole Hermes JSON object in another key order is
        still a call; anything else goes back to the answer as written."""
        fmt = self._fmt
        self._state = "text"
        if fmt is HERMES and closed:
            call = _whole_hermes(body)
            if call is not None:
                name, arguments = call
                # As a call read in order: a built-in one is kept from the client.
                self._start_call(name, None, out)
                self._emit_args(arguments, out)
                self._end_call()
                return
        text = fmt.call_begin + body + (fmt.call_end if closed else "")
        out.append(Segment("answer", text))


def _whole_hermes(body: str) -> tuple[str, str] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return value["name"], text
