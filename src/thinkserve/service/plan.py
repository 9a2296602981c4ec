"""A request on its way through the generation service (imports core, engine, thinking,
catalogue, tools).

``Checked`` is a request validated without tokenizing (enough to admit it); ``Plan`` is one
rendered and tokenized, ready to decode (``service.decode``); ``Progress`` is the usage of a
running plan, which metering reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.types import ChatRequest, Usage
from thinkserve.engine.protocol import Engine, EngineRequest
from thinkserve.service import tooling
from thinkserve.thinking.budget import ThinkingBudget
from thinkserve.thinking.chat_format import ChatFormat, Prompt
from thinkserve.tools.builtin import BuiltinTool

CHARS_PER_TOKEN = 6
"""Characters per token of the admission estimate: BPE vocabularies average about 4 on English
and fewer on most other text, so 6 rarely overestimates."""


DEPTH = 64
"""An engine's line depth (``service.fair``) where its settings name none."""


@dataclass(slots=True)
class Runtime:
    """A loaded engine and the chat format of its model file."""

    engine: Engine
    chat: ChatFormat
    places: int | None = None
    """Sequences the engine decodes at once (llama.cpp's ``n_seq``): what ``service.fair`` lets in.
    None: no line in front of it (an engine without slots, such as the fake one, takes them all)."""
    depth: int = DEPTH
    """Requests that may wait for a place (the engine's ``max_queue``)."""
    budget: ThinkingBudget = field(init=False)

    def __post_init__(self) -> None:
        self.budget = ThinkingBudget(self.chat)


@dataclass(slots=True)
class Progress:
    """The usage of a running plan, updated on every sampled token: metering reads it when a
    stream is cut short between two events (tokens like ``<think>`` yield no event)."""

    usage: Usage = field(default_factory=Usage)
    settling: asyncio.Future[Usage] | None = None
    """Set when the stream was closed before its end: the final usage, once the engine has
    answered the cancel with the tokens it sampled meanwhile (``engine.protocol.Sequence.settle``)."""
    counted: Callable[[int], None] | None = None
    """Called with the response's prompt tokens so far when a later round adds some
    (``service.rounds``), so that the admission's token windows count them too."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated request, ready to run."""

    request: ChatRequest
    spec: ModelSpec
    runtime: Runtime
    prompt: Prompt
    thinking: bool
    engine_request: EngineRequest
    progress: Progress = field(default_factory=Progress, compare=False)
    tools: tooling.PlannedTools = field(default_factory=tooling.PlannedTools.nothing, compare=False)
    builtins: tuple[BuiltinTool, ...] = field(default=(), compare=False)
    """The server's own tools the model may call (``tools.builtin``); they make it several rounds."""
    budget: int = 0
    """The thinking budget of the whole response (``thinking.budget.decide_budget``)."""
    limit: int = 0
    """Sampled tokens the whole response may take (``max_tokens``, else the model's default)."""

    @property
    def thinks_by_default(self) -> bool:
        return self.spec.thinks_by_default()


@dataclass(frozen=True, slots=True)
class Checked:
    """A request validated without tokenizing: enough to admit it and to shape its reply."""

    request: ChatRequest
    spec: ModelSpec
    runtime: Runtime
    thinking: bool
    budget: int
    requested_max: int | None
    builtins: tuple[BuiltinTool, ...] = field(default=(), compare=False)
    """The server's own tools to offer (``service.flow`` adds the search the model may call)."""

    @property
    def thinks_by_default(self) -> bool:
        return self.spec.thinks_by_default()

    @property
    def text_chars(self) -> int:
        """Characters of message text: what rendering and tokenizing cost grows with."""
        return sum(len(m.content) + len(m.reasoning or "") for m in self.request.messages)

    @property
    def estimated_tokens(self) -> int:
        """A cheap prompt-token estimate for admission, before tokenizing (``service.flow``,
        README "Keys, limits, metering and billing"): one token per ``CHARS_PER_TOKEN``
        characters, rounded up. It errs low on ordinary text, so that no request is refused for
        tokens it does not have; the exact count tops it up once known
        (``port.Admission.exact_prompt``)."""
        return -(-self.text_chars // CHARS_PER_TOKEN)
