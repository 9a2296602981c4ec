"""Internal request and usage values shared by every layer (imports nothing from thinkserve).

Wire names (``reasoning_content``, ``prompt_tokens`` ...) never appear here: each dialect's
``convert`` module maps them onto these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

FinishReason = Literal["stop", "length", "tool_calls"]
"""Why a generation ended, written to the wire as is: ``stop`` (end of generation or a stop string),
``length`` (``max_tokens`` or the context), ``tool_calls`` (the model called tools: ``tools.stage``)."""
Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How the next token is drawn. Defaults are Qwen3's recommended thinking-mode values."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    seed: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model made (or an earlier assistant turn made, in history).

    ``arguments`` is the JSON text as the model wrote it: ``'{"location": "Hangzhou"}'``; it is
    not guaranteed to be valid JSON (README "Function calling")."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the caller offers: its name, description and JSON-schema parameters (as
    canonical JSON text, so that the value stays hashable and picklable)."""

    name: str
    description: str | None
    parameters: str
    """``'{"type": "object", "properties": {...}}'``; ``'{}'`` takes no arguments."""


ToolChoiceMode = Literal["auto", "none", "required"]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``auto`` (the model decides), ``none`` (as if no tools were sent), ``required`` (some call),
    or a named function (``function`` set, ``mode`` "required")."""

    mode: ToolChoiceMode = "auto"
    function: str | None = None

    @property
    def forced(self) -> bool:
        return self.mode == "required"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """``json_object`` (``schema`` None: any JSON object) or ``json_schema`` (``schema`` as JSON text)."""

    schema: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation turn."""

    role: Role
    content: str
    reasoning: str | None = None
    """The reasoning of an earlier assistant turn, when the client sends it back."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The calls an earlier assistant turn made."""
    tool_call_id: str | None = None
    """A tool turn: the id of the call whose result ``content`` is."""


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """``enable_search: true`` and its ``search_options``, as both dialects ask for them."""

    forced: bool = False
    """Search whatever the question (``forced_search``)."""
    strategy: str = "turbo"
    """``turbo`` or ``max`` (``search_strategy``): how many results a search returns."""
    sources: bool = False
    """Return the results to the client (``enable_source``)."""
    citations: bool = False
    """Cite results in the answer (``enable_citation``)."""
    citation_format: str = "[<number>]"
    """``[<number>]`` or ``[ref_<number>]`` (``citation_format``)."""
    prepend: bool = False
    """Stream the sources alone first (``prepend_search_result``)."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat request as both dialects understand it, before any model-specific decision."""

    model: str
    messages: tuple[Message, ...]
    stream: bool
    enable_thinking: bool | None = None
    thinking_budget: int | None = None
    max_tokens: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    search: SearchOptions | None = None
    """Web search, when the request turned it on (``enable_search``)."""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = False
    response_format: ResponseFormat | None = None
    """Structured output: the answer is constrained to JSON (``tools.grammar``)."""
    constrain_after_thinking: bool | None = None
    """thinkserve's own opt-in: think freely, then constrain only the answer (JSON mode, forced
    tool calls). None: the model's configured default."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation.

    ``completion_tokens`` counts every token the model sampled (reasoning, answer and the think
    tags it wrote); tokens the server injected to end thinking at the budget are not counted.
    """

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ThinkingDecision(Protocol):
    """What the service decided about a request's thinking, which a dialect's output shape may
    depend on (DashScope's ``result_format`` and ``incremental_output`` defaults)."""

    @property
    def thinking(self) -> bool:
        """The request runs in thinking mode."""
        ...

    @property
    def thinks_by_default(self) -> bool:
        """The model would think had the request not said."""
        ...
