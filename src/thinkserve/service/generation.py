"""The one generation pipeline: validate, render, decode, count (imports core, engine, thinking,
catalogue, tools).

``prepare`` raises every client error before a byte is sent; ``stream`` then decodes the plan into
``core.events``. A non-streaming response is a fold of the same stream (``core.events.fold``).
A plan whose model may call a built-in tool decodes in rounds (``service.rounds``); any other
decodes in one, on the path below. Admission and metering around it are ``service.flow``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

from thinkserve.catalogue import snapshots
from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import ModelNotFound
from thinkserve.core.events import Event
from thinkserve.core.ids import hex_id
from thinkserve.core.types import ChatRequest
from thinkserve.engine.protocol import EngineRequest
from thinkserve.service import rounds, tooling, validation
from thinkserve.service.decode import SETTLE_S, decode, pipeline
from thinkserve.service.plan import CHARS_PER_TOKEN, DEPTH, Checked, Plan, Progress, Runtime
from thinkserve.thinking import budget, decision

__all__ = [
    "CHARS_PER_TOKEN",
    "DEPTH",
    "SETTLE_S",
    "Checked",
    "GenerationService",
    "Plan",
    "Progress",
    "Runtime",
]


class GenerationService:
    """Turns a ``ChatRequest`` into a stream of ``core.events``."""

    def __init__(self, models: Mapping[str, ModelSpec], runtimes: Mapping[str, Runtime]) -> None:
        self._models = models
        self._runtimes = runtimes

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        return self._models

    def prompted(self, spec: ModelSpec) -> bool:
        """Whether the model file behind ``spec`` thinks only when asked by a system instruction."""
        return self._runtimes[spec.engine].chat.prompted

    def prepare(self, request: ChatRequest) -> Plan:
        """Validate against the model's rules and tokenize; raises the client's error."""
        return self.render(self.check(request))

    def check(self, request: ChatRequest) -> Checked:
        """The cheap part of ``prepare``: every client error that needs no tokenizing."""
        spec = snapshots.resolve(request.model, self._models)
        if spec is None:
            raise ModelNotFound(request.model)
        validation.check_messages(request)
        thinking = decision.decide_thinking(spec, request)
        tooling.check(spec, request, thinking=thinking)
        return Checked(
            request,
            spec,
            self._runtimes[spec.engine],
            thinking,
            budget.decide_budget(spec, request),
            validation.max_tokens(spec, request),
        )

    def render(self, checked: Checked) -> Plan:
        """The heavy part of ``prepare``: render the chat template and tokenize (CPU-bound; it
        may run off the event loop), then check the prompt against the context."""
        request, spec, runtime, thinking = checked.request, checked.spec, checked.runtime, checked.thinking
        planned = tooling.plan_tools(request, runtime.chat, checked.builtins)
        prompt = runtime.chat.render(request.messages, thinking=thinking, tools=planned.tools)
        context = runtime.engine.context_length
        validation.check_input_length(spec, len(prompt.tokens), context)
        room = context - len(prompt.tokens)
        default_max = budget.default_max_tokens(spec, thinking=thinking, budget=checked.budget)
        whole = checked.requested_max or default_max
        limit = min(whole, room)
        engine_request = EngineRequest(
            request_id=hex_id(),
            prompt=prompt.tokens,
            sampling=request.sampling,
            max_tokens=limit,
            checkpoint=runtime.budget.checkpoint(prompt, checked.budget, thinking=thinking, max_tokens=limit),
            constraint=tooling.constraint(planned, runtime.chat, thinking=thinking),
            # Stop strings, tool calls and built-in tools' rounds end a generation early: the
            # engine must stream for them.
            whole=planned.fmt is None and not (request.stream or any(request.stop) or checked.builtins),
        )
        return Plan(
            request,
            spec,
            runtime,
            prompt,
            thinking,
            engine_request,
            tools=planned,
            builtins=checked.builtins,
            budget=checked.budget,
            limit=whole,
        )

    def stream(self, plan: Plan) -> AsyncGenerator[Event, None]:
        """Decode ``plan``; always ends with exactly one ``Finished`` unless the engine fails."""
        if plan.builtins:
            return rounds.looped(plan)
        # One round: no layer of the loop's between the engine and the client.
        return decode(plan, pipeline(plan, plan.prompt, plan.tools), plan.engine_request)
