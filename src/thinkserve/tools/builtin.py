"""The seam for server-side built-in tools, such as web search (imports core).

A built-in tool is offered to the model next to the caller's tools, but the server runs it itself:
the client never sees its call. The pieces, in the order a request meets them:

1. **Offer.** ``service.tooling.plan_tools`` builds ``PlannedTools.tools``, what the chat template
   renders. A built-in tool adds its ``spec`` there (for the request that enabled it, e.g. with
   ``enable_search``), so the model learns of it the way it was trained, in its family's format.
2. **Recognise.** ``PlannedTools.stage()`` builds the answer's ``tools.stage.ToolCallStage`` with
   ``builtin=`` the built-in names: a call of one of them is not streamed; it is kept whole in
   ``stage.builtin_calls`` and ends the generation with ``tool_calls``.
3. **Run and continue.** ``service.generation.GenerationService.stream`` then runs it
   (``await tool.run(call.arguments)``), appends to the conversation the assistant turn that made
   the call (``Message("assistant", "", reasoning=..., tool_calls=(call,))``) and the result
   (``Message("tool", result, tool_call_id=call.id)``), renders and submits the continued prompt
   (the engine's prefix cache reuses the KV of everything before), and goes on streaming the new
   sequence's events into the same response, reasoning still as reasoning. ``forced_search``
   runs the tool before the first round instead.
4. **Report.** What the tool did for the response (``search_info``, ``usage.plugins``) is the
   tool's to record; the dialects write it.

A caller's own tool may not take a built-in's name (``api.tools.RESERVED``: Model Studio's "Tool
names are not allowed to be [search]").
"""

from __future__ import annotations

from typing import Protocol

from thinkserve.core.types import ToolSpec


class BuiltinTool(Protocol):
    """A tool the server runs itself."""

    @property
    def spec(self) -> ToolSpec:
        """How it is offered to the model: name, description, JSON-schema parameters."""
        ...

    async def run(self, arguments: str) -> str:
        """Run one call (``arguments``: the JSON text the model wrote, possibly invalid) and return
        the text that goes back to the model as the tool's result."""
        ...
