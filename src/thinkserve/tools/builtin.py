"""The seam for server-side built-in tools, such as web search (imports core).

A built-in tool is offered to the model next to the caller's tools, but the server runs it itself:
the client never sees its call. The pieces, in the order a request meets them:

1. **Offer.** ``service.tooling.plan_tools`` builds ``PlannedTools.tools``, what the chat template
   renders. A built-in tool adds its ``spec`` there while it is ``offered`` (for the request that
   enabled it, e.g. with ``enable_search``), so the model learns of it the way it was trained, in
   its family's format.
2. **Recognise.** ``PlannedTools.stage()`` builds the answer's ``tools.stage.ToolCallStage`` with
   ``builtin=`` the built-in names: a call of one of them is not streamed; it is kept whole in
   ``stage.builtin_calls`` and ends the generation with ``tool_calls``.
3. **Run and continue.** ``service.rounds`` then runs it (``await tool.run(call.arguments)``),
   appends to the conversation the assistant turn that made the call
   (``Message("assistant", "", reasoning=..., tool_calls=(call,))``) and the result
   (``Message("tool", ran.text, tool_call_id=call.id)``), renders and submits the continued prompt
   (the engine's prefix cache reuses the KV of everything before), and goes on streaming the new
   sequence's events into the same response, reasoning still as reasoning. ``forced_search``
   runs the search before the first round instead (``search.web_search``).
4. **Report.** What the tool did for the response is the event it returns (``Ran.event``: a
   ``Searched``, from which metering counts the call and the dialects write ``search_info`` and
   ``usage.plugins``); the loop puts it in the stream before the next round's events.

A caller's own tool may not take a built-in's name (``api.tools.RESERVED``: Model Studio's "Tool
names are not allowed to be [search]").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from thinkserve.core.events import Event
from thinkserve.core.types import ToolSpec


@dataclass(frozen=True, slots=True)
class Ran:
    """One call of a built-in tool, run::

    Ran("[1] Rotating keys\\nURL: file:///srv/docs/keys.md\\n...", Searched("rotate keys", ...))
    Ran('Error: call search with {"query": "what to search for"}.')
    """

    text: str
    """What goes back to the model as the tool's result."""
    event: Event | None = None
    """What the response reports of the run, if anything (it goes into the stream)."""


class BuiltinTool(Protocol):
    """A tool the server runs itself; one object per request (it may count its calls)."""

    @property
    def spec(self) -> ToolSpec:
        """How it is offered to the model: name, description, JSON-schema parameters."""
        ...

    @property
    def offered(self) -> bool:
        """Whether the model may (still) call it: False once the request used up its calls, and
        the next round's prompt no longer lists it."""
        ...

    async def run(self, arguments: str) -> Ran:
        """Run one call (``arguments``: the JSON text the model wrote, possibly invalid)."""
        ...
