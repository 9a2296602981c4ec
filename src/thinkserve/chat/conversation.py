"""The chat's state: model, thinking switches, history and running totals, and the slash commands
that change them (imports chat.events, chat.cost).

Commands, typed alone on a line::

    /think          think (enable_thinking: true) from the next call on
    /no_think       do not think (enable_thinking: false)
    /budget N       thinking_budget N; "/budget off" leaves it to the model (its max_cot)
    /model M        talk to model M
    /clear          forget the conversation so far
    /usage          this session's calls, tokens and cost
    /help           the list of commands
    /exit, /quit    leave (so does Ctrl-D)

A line that starts with ``/`` is a command. ``/think`` or ``/no_think`` later in a question is sent
as written: models that honour those directives read them in the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from thinkserve.chat.cost import cost_nano, money
from thinkserve.chat.events import Call, Tokens
from thinkserve.platform.billing import Price

HELP = """commands:
  /think          think from the next call on (enable_thinking: true)
  /no_think       do not think (enable_thinking: false)
  /budget N       limit thinking to N tokens; /budget off: the model's default
  /model M        talk to model M
  /clear          forget the conversation
  /usage          this session's calls, tokens and cost
  /exit           leave (or Ctrl-D)"""


@dataclass
class Conversation:
    model: str
    enable_thinking: bool | None = None
    thinking_budget: int | None = None
    prices: Mapping[str, Price] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)
    calls: int = 0
    tokens: Tokens = field(default_factory=Tokens)
    cost_nano: int = 0
    unpriced_calls: int = 0

    def call(self, prompt: str) -> Call:
        """The next request: the history, then ``prompt`` as the user's turn."""
        messages = (*self.history, {"role": "user", "content": prompt})
        return Call(self.model, messages, self.enable_thinking, self.thinking_budget)

    def record(self, prompt: str, answer: str, tokens: Tokens | None) -> int | None:
        """Keep a finished turn (the answer only: servers drop earlier turns' reasoning anyway)
        and count its usage; returns its cost in nano-units (``None``: no price)."""
        self.history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        self.calls += 1
        if tokens is None:
            self.unpriced_calls += 1
            return None
        self.tokens += tokens
        cost = cost_nano(self.prices, self.model, tokens)
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.cost_nano += cost
        return cost

    def thinking_label(self) -> str:
        switch = {None: "model default", True: "on", False: "off"}[self.enable_thinking]
        budget = "" if self.thinking_budget is None else f", budget {self.thinking_budget}"
        return f"thinking {switch}{budget}"

    def usage_report(self) -> str:
        t = self.tokens
        cost = money(self.cost_nano)
        if self.unpriced_calls:
            cost += f" (+{self.unpriced_calls} call(s) without a price)"
        return (
            f"{self.calls} call(s): prompt {t.prompt} (cached {t.cached}), "
            f"output {t.output} (reasoning {t.reasoning}), cost {cost}"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did: the line to show, and whether to leave the chat."""

    message: str
    leave: bool = False


def is_command(line: str) -> bool:
    """Whether a typed line is a command (any line that starts with ``/``)."""
    return line.lstrip().startswith("/")


def run_command(conversation: Conversation, line: str) -> Outcome:
    """Apply one slash command to ``conversation``."""
    name, _, arg = line.strip().partition(" ")
    arg = arg.strip()
    if name == "/think":
        conversation.enable_thinking = True
        return Outcome(conversation.thinking_label())
    if name == "/no_think":
        conversation.enable_thinking = False
        return Outcome(conversation.thinking_label())
    if name == "/budget":
        return _budget(conversation, arg)
    if name == "/model":
        if not arg:
            return Outcome(f"model {conversation.model} (change it with /model NAME)")
        conversation.model = arg
        return Outcome(f"model {arg}")
    if name == "/clear":
        conversation.history.clear()
        return Outcome("conversation cleared")
    if name == "/usage":
        return Outcome(conversation.usage_report())
    if name == "/help":
        return Outcome(HELP)
    if name in ("/exit", "/quit", "/bye"):
        return Outcome("", leave=True)
    return Outcome(f"unknown command {name}; /help lists them")


def _budget(conversation: Conversation, arg: str) -> Outcome:
    if arg in ("off", "none", "default"):
        conversation.thinking_budget = None
        return Outcome(conversation.thinking_label())
    if not arg.isdigit() or int(arg) < 1:
        return Outcome("usage: /budget N (a positive number of tokens) or /budget off")
    conversation.thinking_budget = int(arg)
    return Outcome(conversation.thinking_label())
