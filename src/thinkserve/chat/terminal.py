"""What the person sees: streamed replies, the line of usage after each, and the prompt loop
(imports chat).

Interactively, a reply looks like this (reasoning dimmed, the usage line in cyan)::

    > What is 12 plus 7?
    12 plus 7: 10 plus 7 is 17, plus 2 is 19.          <- dim (SGR 2)

    12 plus 7 is 19.
    qwen3-8b · prompt 18 (cached 0) · output 40 (reasoning 31) · first token 0.12 s · 143 tok/s · cost 0.00003

From a pipe, stdout gets the answer alone and stderr the reasoning and the usage line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
from rich.console import Console

from thinkserve.chat.conversation import Conversation, is_command, run_command
from thinkserve.chat.cost import money
from thinkserve.chat.events import Answer, Call, ChatError, Event, Finished, Reasoning, Tokens

REASONING_STYLE = "dim"
USAGE_STYLE = "cyan"
PROMPT = "[bold green]>[/] "


@dataclass(frozen=True, slots=True)
class Reply:
    reasoning: str
    answer: str
    tokens: Tokens | None
    finish_reason: str | None
    first_token_s: float | None
    """Seconds from the request to its first reasoning or answer text."""
    decode_s: float
    """Seconds from the first text to the end."""


class Screen:
    """Writes replies: everything to ``out`` interactively; from a pipe (``pipe=True``) the answer to
    ``out`` and the rest to ``err``."""

    def __init__(self, out: Console, err: Console, *, pipe: bool) -> None:
        self.out = out
        self.err = err
        self.pipe = pipe

    @property
    def side(self) -> Console:
        """Where reasoning, usage and notices go."""
        return self.err if self.pipe else self.out

    def write(self, console: Console, text: str, style: str | None = None) -> None:
        console.print(text, style=style, end="", soft_wrap=True, markup=False, highlight=False, emoji=False)

    def note(self, text: str, style: str = USAGE_STYLE) -> None:
        self.write(self.side, text + "\n", style)

    def reply(self, stream: Iterator[Event]) -> Reply:
        """Render a streamed reply as it comes; raises ``ChatError`` (and httpx's errors)."""
        started = time.monotonic()
        first: float | None = None
        reasoning: list[str] = []
        answer: list[str] = []
        finished = Finished(None, None)
        for event in stream:
            if isinstance(event, Finished):
                finished = event
                continue
            if first is None:
                first = time.monotonic()
            if isinstance(event, Reasoning):
                reasoning.append(event.text)
                self.write(self.side, event.text, REASONING_STYLE)
            elif isinstance(event, Answer):
                if not answer and reasoning:
                    # The thinking ends: a blank line, so the answer stands apart from it.
                    self.write(self.side, "\n\n")
                answer.append(event.text)
                self.write(self.out, event.text)
        if reasoning and not answer:
            self.write(self.side, "\n")
        if answer:
            self.write(self.out, "\n")
        ended = time.monotonic()
        return Reply(
            "".join(reasoning),
            "".join(answer),
            finished.tokens,
            finished.finish_reason,
            None if first is None else first - started,
            0.0 if first is None else ended - first,
        )


def usage_line(model: str, reply: Reply, cost: int | None) -> str:
    """``qwen3-8b · prompt 18 (cached 0) · output 40 (reasoning 31) · first token 0.12 s · 143 tok/s ·
    cost 0.00003`` (``cost n/a`` when the model has no price)."""
    parts = [model]
    t = reply.tokens
    if t is not None:
        parts += [f"prompt {t.prompt} (cached {t.cached})", f"output {t.output} (reasoning {t.reasoning})"]
    if reply.first_token_s is not None:
        parts.append(f"first token {reply.first_token_s:.2f} s")
    if t is not None and reply.decode_s > 0 and t.output > 1:
        parts.append(f"{t.output / reply.decode_s:.0f} tok/s")
    if reply.finish_reason not in (None, "stop"):
        parts.append(f"finish {reply.finish_reason}")
    parts.append(f"cost {money(cost)}" if cost is not None else "cost n/a (no price for this model)")
    return " · ".join(parts)


Send = Callable[[Call], Iterator[Event]]
"""A wire's ``stream``: sends a call and yields its events."""


def turn(conversation: Conversation, screen: Screen, send: Send, prompt: str) -> bool:
    """One question and its answer, kept in the history when it completes; False on an error."""
    try:
        reply = screen.reply(send(conversation.call(prompt)))
    except ChatError as exc:
        screen.note(f"error: {exc}", "bold red")
        return False
    except httpx.HTTPError as exc:
        screen.note(f"error: {type(exc).__name__}: {exc}", "bold red")
        return False
    cost = conversation.record(prompt, reply.answer, reply.tokens)
    screen.note(usage_line(conversation.model, reply, cost))
    return True


def interactive(
    conversation: Conversation, screen: Screen, send: Send, where: str, read: Callable[[str], str]
) -> int:
    """The prompt loop: commands, or questions answered in turn, until ``/exit`` or end of input."""
    screen.note(f"thinkserve chat · {conversation.model} at {where} · {conversation.thinking_label()}")
    screen.note("type a question; /help lists the commands; Ctrl-D leaves", "dim italic")
    while True:
        try:
            line = read(PROMPT).strip()
        except EOFError:
            screen.write(screen.out, "\n")
            return 0
        except KeyboardInterrupt:
            screen.write(screen.out, "\n")
            continue
        if not line:
            continue
        if is_command(line):
            outcome = run_command(conversation, line)
            if outcome.leave:
                return 0
            screen.note(outcome.message)
            continue
        try:
            turn(conversation, screen, send, line)
        except KeyboardInterrupt:
            # The stream is closed with its response; the unfinished turn is not kept.
            screen.note("\n(interrupted)", "yellow")
