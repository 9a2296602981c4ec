"""The engine protocol: token ids in, an async stream of token events out (imports only core).

Narrow on purpose, so that llama.cpp in-process, vLLM's AsyncLLM and a remote completions server
all fit behind it:

- ``submit(EngineRequest) -> Sequence``: starts decoding a tokenized prompt;
- ``Sequence`` is an async iterator of ``TokenEvent``, then either ``Paused`` or ``EngineFinished``;
- after ``Paused`` the consumer calls ``Sequence.resume(tokens)``: the engine appends those tokens to
  the *same* sequence (in-process engines keep the KV cache; remote ones resend the prefix and rely
  on prefix caching) and goes on sampling;
- ``Sequence.cancel()`` stops it; the engine frees its slot within one decode step and answers
  with ``EngineFinished("cancelled")``; ``Sequence.settle()`` then gives the tokens the engine
  sampled that the consumer never took, so that usage counts every token generated;
- ``tokenizer`` gives the model's own tokenizer and chat template;
- ``health()`` says whether the engine can take work (``Health``), ``snapshot()`` gives its load
  (``EngineStats``) for the metrics.

Thinking semantics stay above this line: the engine only knows "pause after N sampled tokens
unless a marker appeared first" (``Checkpoint``), which is all a thinking budget needs; the
mechanism every engine shares lives in ``engine.checkpoint``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Literal, Protocol

from thinkserve.core.types import SamplingParams


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Pause a sequence after ``limit`` sampled tokens, unless a marker was sampled first.

    The marker is a token id (``until_token``, for tokenizers with a ``</think>`` token) or a
    text (``until_text``, matched on the detokenized output). Once the marker is seen the
    checkpoint is disarmed and decoding runs on to ``max_tokens``.
    """

    limit: int
    until_token: int | None = None
    until_text: str | None = None
    on_end: bool = False
    """Also pause (instead of finishing) if an end-of-generation token is sampled while armed;
    that token is dropped, not emitted nor kept in the sequence. Prompted thinking uses it to
    close a think block the model forgot to close."""


START_WINDOW = 256
"""Characters of output after the marker within which ``Constraint.start_pattern`` may match."""


@dataclass(frozen=True, slots=True)
class Constraint:
    """Constrained decoding as data (it crosses the engine process's wire as is): a llama.cpp
    GBNF grammar whose rule ``root`` every sampled token must follow, from the first token after
    the marker (``after_token`` id or ``after_text``, as in ``Checkpoint``; both None: from the
    first token). Thinking models pass ``</think>``, so reasoning stays free::

        Constraint('root ::= [ \\t\\n]{0,4} "<tool_call>" ...', after_token=151668)

    With a ``trigger`` or a ``start_pattern`` the grammar is lazy (llama.cpp's "lazy grammars",
    for ``tool_choice`` auto): past the marker decoding stays free until one of them fires, and
    the grammar applies from the next sampled token::

        Constraint('root ::= [ \\t\\n]{0,4} "{" space "\\"name\\"" ...', after_token=151668,
                   trigger="<tool_call>", start_pattern='\\s*(\\{\\s*"name"\\s*:\\s*"(?:f|g)")')

    - ``trigger``: a text anywhere in the output past the marker (sampled or injected); the
      grammar describes what follows it (text after it in the same token is fed to it first);
    - ``start_pattern``: a regular expression (Python's ``re``) matched at the start of the output
      past the marker (the answer), while that is at most ``START_WINDOW`` characters long; the
      grammar is fed the answer from
      the match's first group on (llama.cpp's full-pattern trigger, for Hermes calls written
      bare, without their tags).

    Both are looked for only after the marker, so reasoning never fires them.

    Tokens injected after a pause are not fed to the grammar (the budget's early-stop text ends
    in whitespace, which every grammar of ``tools.grammar`` allows before its first character).
    Only the llama.cpp engine constrains; the others (vLLM, remote servers, the scripted fake
    engine) ignore constraints, as their docs say.
    """

    grammar: str
    after_token: int | None = None
    after_text: str | None = None
    trigger: str | None = None
    start_pattern: str | None = None

    @property
    def immediate(self) -> bool:
        return self.after_token is None and self.after_text is None

    @property
    def lazy(self) -> bool:
        return self.trigger is not None or self.start_pattern is not None


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """A tokenized prompt and how to continue it."""

    request_id: str
    prompt: Seq[int]
    sampling: SamplingParams
    max_tokens: int
    """Cap on sampled tokens (injected tokens do not count)."""
    checkpoint: Checkpoint | None = None
    constraint: Constraint | None = None
    whole: bool = False
    """The caller reads nothing before the end and never ends the sequence early on its own (a
    non-streaming request without stop strings or tools): an engine may sample a completion whole
    before it hands over any of its tokens (the remote engine then asks its upstream for one
    response instead of a stream)."""


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One token added to the sequence.

    ``text`` is the newly decodable text: "" while a multi-byte UTF-8 character is still
    incomplete, and it may carry several characters once it completes.
    """

    token: int
    text: str
    injected: bool = False


@dataclass(frozen=True, slots=True)
class Paused:
    """The checkpoint fired; the sequence waits for ``resume``."""

    at_end: bool = False
    """True when it fired on an end-of-generation token (``Checkpoint.on_end``), not the limit."""


@dataclass(frozen=True, slots=True)
class EngineFinished:
    """The sequence ended. ``stop``: an end-of-generation token; ``length``: ``max_tokens``;
    ``cancelled``: the engine's answer to ``Sequence.cancel`` (seen only by ``settle``)."""

    reason: Literal["stop", "length", "cancelled"]
    prompt_tokens: int
    cached_tokens: int
    """Prompt tokens that were reused from the KV cache instead of being evaluated."""
    sampled_tokens: int


EngineEvent = TokenEvent | Paused | EngineFinished


HealthState = Literal["starting", "up", "down", "stopped"]


@dataclass(frozen=True, slots=True)
class Health:
    """Whether an engine can take work::

        Health("up", "llama.cpp, CPU backend zen4")
        Health("down", "the engine process was killed by SIGILL; restarting in 2 s", restarts=1)

    ``stopped``: closed on purpose.
    """

    state: HealthState
    reason: str = ""
    """Why it is not up, or what it runs on when it is."""
    restarts: int = 0
    """Times it was started again after a crash (an engine in a process of its own)."""
    pid: int | None = None
    """The engine's own process, if it has one."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """What every engine reports of its load, read by the metrics at each scrape."""

    active_sequences: int = 0
    """Sequences holding a slot (running, prefilling or paused)."""
    waiting: int = 0
    """Requests submitted and not yet holding a slot (the queue depth)."""
    sampled_tokens: int = 0
    """Tokens sampled since the engine started."""
    kv_cells_used: int = 0
    kv_size: int = 0
    """KV cache size in cells; 0 for an engine without one (then ``kv_cells_used`` means nothing)."""


class Sequence(Protocol):
    """A running generation. Iterate it; ``cancel`` is idempotent and safe from any task."""

    def __aiter__(self) -> AsyncIterator[EngineEvent]: ...

    def resume(self, tokens: Seq[int]) -> None:
        """Append ``tokens`` after a ``Paused`` and continue sampling."""
        ...

    def cancel(self) -> None: ...

    async def settle(self, limit_s: float) -> Seq[EngineEvent]:
        """Cancel (if still running), then wait up to ``limit_s`` seconds for the engine's answer.

        Returns the events the engine sent that the iterator never gave out, in order, ending with
        the engine's ``EngineFinished`` when it came in time: the tokens sampled between the
        consumer's last read and the cancel taking effect. Empty for an engine that samples only
        when iterated, or once the sequence had already ended and been read to its end.
        """
        ...


class Tokenizer(Protocol):
    """The model's tokenizer and chat template."""

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        """Tokenize; ``special`` parses control-token text such as ``<|im_start|>``."""
        ...

    @property
    def control_texts(self) -> frozenset[str]:
        """The text of every token that ``encode(special=True)`` parses and ``special=False`` leaves
        as text (``<|im_start|>``, ``<|im_end|>``...): what caller text must never become."""
        ...

    def decode(self, tokens: Seq[int]) -> str: ...

    def token_id(self, text: str) -> int | None:
        """The id of ``text`` if it is exactly one token (e.g. ``<think>``), else None."""
        ...

    @property
    def chat_template(self) -> str | None:
        """The Jinja chat template from the model file, if any."""
        ...

    @property
    def bos_token(self) -> str: ...

    @property
    def eos_token(self) -> str: ...


class Engine(Protocol):
    """A loaded model that decodes sequences."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def context_length(self) -> int:
        """Maximum prompt + generated tokens of one sequence."""
        ...

    def submit(self, request: EngineRequest) -> Sequence:
        """Queue a sequence; raises ``core.errors.Overloaded`` when the queue is full."""
        ...

    def health(self) -> Health:
        """Cheap and non-blocking: the state as last observed."""
        ...

    def snapshot(self) -> EngineStats:
        """The engine's load now (cheap: called at every metrics scrape)."""
        ...

    async def aclose(self) -> None: ...
