"""User stop strings on the answer text (imports nothing from thinkserve)."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Cuts the answer at the first stop string, holding back text that may start one.

    ``feed("Hello ST")`` with stop ``["STOP"]`` returns ``("Hello ", False)`` and keeps ``"ST"``;
    a following ``feed("OP now")`` returns ``("", True)``.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.hit = False

    def feed(self, text: str) -> tuple[str, bool]:
        """The text safe to emit, and whether a stop string was hit."""
        if not self._stops:
            return text, False
        buf = self._held + text
        first = min((i for i in (buf.find(s) for s in self._stops) if i >= 0), default=-1)
        if first >= 0:
            self._held = ""
            self.hit = True
            return buf[:first], True
        keep = max((_overlap(buf, s) for s in self._stops), default=0)
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def finish(self) -> str:
        held, self._held = self._held, ""
        return held


def _overlap(text: str, stop: str) -> int:
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0
