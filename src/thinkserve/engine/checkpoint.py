"""The checkpoint mechanism every engine shares (imports engine.protocol only).

A ``protocol.Checkpoint`` asks an engine to pause a sequence after ``limit`` sampled tokens unless
a marker was sampled first. ``CheckpointState`` is one sequence's side of that: armed until the
marker shows up or the sequence pauses, paused until ``resume``. The engine decides *when* it
looks (before a sample, after one, on an end-of-generation token); this module decides *what*
the answer is, so that every engine pauses on the same rule::

    state = CheckpointState(Checkpoint(limit=3, until_text="</think>"))
    # after each sampled token (sampled = tokens sampled so far):
    if state.armed and state.after(token, text, sampled):
        state.pause()        # emit Paused, wait for resume(tokens)
    ...
    state.resume()           # disarmed for good: decoding runs on to max_tokens
"""

from __future__ import annotations

from thinkserve.engine.protocol import Checkpoint


class CheckpointState:
    """One sequence's checkpoint: armed, paused, and the tail kept for text markers.

    Engines read ``armed`` and ``limit`` inline in their per-token path (no call while unarmed).
    """

    __slots__ = ("armed", "limit", "marker_tail", "on_end", "paused", "until_text", "until_token")

    def __init__(self, checkpoint: Checkpoint | None) -> None:
        self.armed = checkpoint is not None
        """Still watching: neither the marker nor a pause happened yet."""
        self.paused = False
        self.limit = checkpoint.limit if checkpoint is not None else 0
        self.until_token = checkpoint.until_token if checkpoint is not None else None
        self.until_text = checkpoint.until_text if checkpoint is not None else None
        self.on_end = checkpoint.on_end if checkpoint is not None else False
        self.marker_tail = ""
        """The end of the text seen so far, shorter than ``until_text`` (see ``marker_seen``)."""

    def due(self, sampled: int) -> bool:
        """Whether to pause before sampling again (a zero limit pauses before the first token)."""
        return self.armed and sampled >= self.limit

    def pauses_at_end(self) -> bool:
        """Whether an end-of-generation token pauses the sequence instead of finishing it."""
        return self.armed and self.on_end

    def saw_marker(self, token: int, text: str) -> bool:
        """Note one emitted token; True (and disarmed) when it completes the marker."""
        if token == self.until_token or marker_seen(self, self.until_text, text):
            self.armed = False
            return True
        return False

    def after(self, token: int, text: str, sampled: int) -> bool:
        """After a sampled token (call while armed): True when the sequence must pause now."""
        # saw_marker inlined: this runs once per token of every armed sequence.
        if token == self.until_token or marker_seen(self, self.until_text, text):
            self.armed = False
            return False
        return sampled >= self.limit

    def pause(self) -> None:
        # A checkpoint fires once: after the resume the sequence runs on to max_tokens.
        self.paused = True
        self.armed = False

    def resume(self) -> None:
        self.paused = False


def marker_seen(state: CheckpointState, marker: str | None, text: str) -> bool:
    """Whether ``marker`` appears in the output, counting matches split across tokens.

    ``text`` is the newly decoded text; ``state.marker_tail`` keeps the last ``len(marker) - 1``
    characters before it, so ``"</th"`` then ``"ink>"`` finds ``"</think>"``.
    """
    if not marker or not text:
        return False
    window = state.marker_tail + text
    if marker in window:
        return True
    state.marker_tail = window[-(len(marker) - 1) :] if len(marker) > 1 else ""
    return False
