"""What a streamed reply is made of, whichever wire format carried it (imports nothing)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A piece of the model's thinking."""

    text: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Tokens:
    """A call's usage as the server reported it; ``output`` includes ``reasoning``."""

    prompt: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.prompt + other.prompt,
            self.cached + other.cached,
            self.output + other.output,
            self.reasoning + other.reasoning,
        )


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a reply: its usage (``None`` when the server sent none) and finish reason."""

    tokens: Tokens | None
    finish_reason: str | None
    request_id: str | None = None


Event = Reasoning | Answer | Finished


class ChatError(Exception):
    """The server refused the call or ended the stream with an error (its code and message)."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "stream"
        return f"{where} {self.code}: {self.message}" if self.code else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Call:
    """One request: the conversation so far (``{"role", "content"}`` dicts) and the thinking switches;
    ``None`` leaves a switch to the model's default."""

    model: str
    messages: tuple[dict[str, str], ...]
    enable_thinking: bool | None = None
    thinking_budget: int | None = None
