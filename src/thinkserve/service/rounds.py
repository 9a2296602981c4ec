"""The tool-calling loop of a request whose model may call a built-in tool, such as the web search
(imports core, engine, service, thinking, tools; ``tools.builtin`` describes the seam).

Each round is one ``service.decode.decode``. A round that ends with a call of a built-in tool is
not the end of the response: the loop runs the tool, puts the event it reports (``Searched``) in
the stream, appends the assistant turn that made the call (its reasoning kept) and the tool's
result to the conversation, renders it again and submits the continued prompt (the engine's prefix
cache reuses the KV of what came before). The client sees one response: the reasoning of every
round as reasoning (a later round's after a blank line), the answer of the last, no call of a
built-in tool, and one ``Finished``.

What the rounds share:

- **Thinking budget and ``max_tokens``** count across rounds: a round's checkpoint pauses it at
  the budget less the reasoning of the rounds before (0 left: at once, with the usual early-stop
  text), and its ``max_tokens`` is the request's (or the default) less the tokens sampled before.
- **Usage** adds the rounds up, as Model Studio bills each model call of a tool loop:
  ``prompt_tokens`` is the sum of the rounds' prompts, ``cached_tokens`` the sum of what each
  reused (most of a later round's prompt), ``completion_tokens`` and ``reasoning_tokens`` every
  sampled token once. The admission's token windows hear of each later prompt
  (``plan.Progress.counted``).

How it ends:

- a round without a built-in call ends the response as a single round does;
- a built-in call together with calls of the caller's tools is not run: the response ends with the
  caller's calls (``tool_calls``), as the client must run them anyway;
- a built-in call of a tool that is no longer offered (``BuiltinTool.offered``: the search's calls
  used up, so the prompt no longer listed it) ends the response (``stop``);
- a call cut by ``max_tokens``, ``max_tokens`` used up, or a continued prompt too long for the
  context ends it with ``length``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import replace

from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.core.ids import hex_id
from thinkserve.core.types import Message, ToolCall, Usage
from thinkserve.engine.protocol import EngineRequest
from thinkserve.service import tooling
from thinkserve.service.decode import decode, pipeline
from thinkserve.service.pipeline import DecodePipeline
from thinkserve.service.plan import Plan
from thinkserve.thinking.chat_format import Prompt

SEPARATOR = "\n\n"
"""Between the reasoning of two rounds (not sampled, not counted)."""


async def looped(plan: Plan) -> AsyncGenerator[Event, None]:
    """Decode ``plan`` round after round while its model calls a built-in tool; always ends with
    exactly one ``Finished`` unless the engine fails."""
    messages = plan.request.messages
    prompt, tools, request = plan.prompt, plan.tools, plan.engine_request
    before: Usage | None = None
    reasoned = False  # an earlier round streamed reasoning
    while True:
        decoding = pipeline(plan, prompt, tools, before)
        reasoning: list[str] = []
        answer: list[str] = []
        finished: Finished | None = None
        # Closed with the response (a client gone): the round's sequence is cancelled and settled
        # before metering reads the usage.
        async with contextlib.aclosing(decode(plan, decoding, request)) as events:
            async for event in events:
                if isinstance(event, ReasoningDelta):
                    if reasoned and not reasoning:
                        reasoning.append(event.text)
                        yield ReasoningDelta(SEPARATOR + event.text, event.usage)
                        continue
                    reasoning.append(event.text)
                elif isinstance(event, AnswerDelta):
                    answer.append(event.text)
                elif isinstance(event, Finished):
                    finished = event
                    continue
                yield event
        assert finished is not None, "decode ends with Finished"
        call = _builtin_call(decoding, finished)
        if call is None:
            yield finished
            return
        usage = finished.usage
        tool = next(b for b in plan.builtins if b.spec.name == call.name)
        if not tool.offered:
            yield Finished("stop", usage, plan.thinking)
            return
        if usage.completion_tokens >= plan.limit:
            yield Finished("length", usage, plan.thinking)
            return
        ran = await tool.run(call.arguments)
        if ran.event is not None:
            yield ran.event
        reasoned = reasoned or bool(reasoning)
        turn = Message("assistant", "".join(answer), reasoning="".join(reasoning) or None, tool_calls=(call,))
        messages = (*messages, turn, Message("tool", ran.text, tool_call_id=call.id))
        # Rendering and tokenizing grow with the conversation: off the event loop.
        continued = await asyncio.to_thread(_continued, plan, messages, usage)
        if continued is None:
            yield Finished("length", usage, plan.thinking)
            return
        prompt, tools, request = continued
        if plan.progress.counted is not None:
            plan.progress.counted(usage.prompt_tokens + len(prompt.tokens))
        before = usage


def _builtin_call(decoding: DecodePipeline, finished: Finished) -> ToolCall | None:
    """The built-in call that ended the round, if the loop is to run it."""
    stage = decoding.calls
    if stage is None or not stage.builtin_calls or stage.called or finished.reason != "tool_calls":
        return None
    return stage.builtin_calls[0]


def _continued(
    plan: Plan, messages: tuple[Message, ...], usage: Usage
) -> tuple[Prompt, tooling.PlannedTools, EngineRequest] | None:
    """The next round's prompt, tools and engine request; None when it has no room to sample."""
    runtime = plan.runtime
    chat = runtime.chat
    tools = tooling.plan_tools(replace(plan.request, messages=messages), chat, plan.builtins)
    prompt = chat.render(messages, thinking=plan.thinking, tools=tools.tools)
    context = runtime.engine.context_length
    if len(prompt.tokens) > min(plan.spec.max_input, context - 1):
        return None
    limit = min(plan.limit - usage.completion_tokens, context - len(prompt.tokens))
    if limit < 1:
        return None
    budget = max(0, plan.budget - usage.reasoning_tokens)
    request = EngineRequest(
        request_id=hex_id(),
        prompt=prompt.tokens,
        sampling=plan.request.sampling,
        max_tokens=limit,
        checkpoint=runtime.budget.checkpoint(prompt, budget, thinking=plan.thinking, max_tokens=limit),
        constraint=tooling.constraint(tools, chat, thinking=plan.thinking),
    )
    return prompt, tools, request
