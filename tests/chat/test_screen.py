"""The terminal's rendering of a reply: reasoning dimmed then the answer; from a pipe, the answer
alone on stdout."""

from __future__ import annotations

import io

from rich.console import Console

from thinkserve.chat.events import Answer, Finished, Reasoning, Tokens
from thinkserve.chat.terminal import Screen, usage_line

EVENTS = [Reasoning("7 and 12"), Reasoning(" is 19."), Answer("19"), Finished(Tokens(9, 0, 12, 5), "stop")]


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(
        file=buffer, force_terminal=terminal, color_system="standard" if terminal else None
    ), buffer


def test_interactive_reasoning_is_dim_and_comes_before_the_answer() -> None:
    (out, text), (err, side) = console(True), console(True)
    reply = Screen(out, err, pipe=False).reply(iter(EVENTS))
    assert (reply.reasoning, reply.answer, reply.tokens) == ("7 and 12 is 19.", "19", Tokens(9, 0, 12, 5))
    written = text.getvalue()
    assert written == "\x1b[2m7 and 12\x1b[0m\x1b[2m is 19.\x1b[0m\n\n19\n"
    assert side.getvalue() == ""


def test_pipe_keeps_stdout_for_the_answer() -> None:
    (out, text), (err, side) = console(False), console(False)
    reply = Screen(out, err, pipe=True).reply(iter(EVENTS))
    assert text.getvalue() == "19\n"
    assert side.getvalue() == "7 and 12 is 19.\n\n"
    line = usage_line("qwen3-8b", reply, 1500)
    assert line.startswith("qwen3-8b · prompt 9 (cached 0) · output 12 (reasoning 5) · first token ")
    assert line.endswith(" · cost 0.0000015")
    assert usage_line("m", reply, None).endswith("cost n/a (no price for this model)")
