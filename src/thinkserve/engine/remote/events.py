"""Server-sent events to chunks, one read at a time (pure; imports engine.remote.wire).

``upstream`` hands every read from the socket to ``EventReader.feed``, which returns one ``Chunk``
for all the events that the read completed: the tokens of every event in order, the last finish
reason, the first prompt-cache count. A read holds many events whenever the server writes faster
than the gateway reads (a busy gateway, a server that batches its writes), and then their tokens
cross the event loop and the engine's queue together instead of one by one (where the events
count their tokens, as llama.cpp's do, the chunk keeps them as ``parts`` too, for the ids they
withheld)::

    reader = EventReader(VllmWire())
    reader.feed(b'data: {"choices": [{"token_ids": [9707], ...}]}\\n\\ndata: {"choi')
    -> Chunk(tokens=[9707])                     # the second event waits for the rest of its line
    reader.feed(b'ces": [{"token_ids": [11], "finish_reason": "stop"}]}\\n\\ndata: [DONE]\\n\\n')
    -> Chunk(tokens=[11], finish="stop")
    reader.done -> True

Lines are split at ``\\n`` (a ``\\r`` before it goes with the stripping of each ``data:``
payload); a last line without its newline counts at the end of the body (``end``). After the
protocol's done line every line is ignored. An event that fails to parse or that the wire refuses
raises ``WireError`` (or ``orjson.JSONDecodeError``), but only after the events before it in the
same read were handed out: ``feed`` returns them, and the next ``feed`` (or ``raise_pending``)
raises, exactly as if they had come one per read.
"""

from __future__ import annotations

from typing import Any

import orjson

from thinkserve.engine.remote.wire import Chunk, Wire, WireError

MAX_LINE = 8 * 1024 * 1024
"""The longest line kept waiting for its end (what the aiohttp client allowed before): vLLM's first
event holds the prompt's ids."""

_EMPTY = Chunk()


class EventReader:
    """One stream's events: feed it every read; see the module docstring."""

    __slots__ = ("_done_line", "_error", "_tail", "_wire", "done")

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._done_line = wire.done_line.encode() if wire.done_line is not None else None
        self._tail = b""
        """The start of a line whose end has not come yet."""
        self._error: Exception | None = None
        self.done = False
        """The done line came: what follows is only read to the end of the body."""

    def feed(self, data: bytes) -> Chunk:
        """The events that ``data`` completed, as one chunk (empty when it completed none)."""
        self.raise_pending()
        if self._tail:
            data = self._tail + data
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) > MAX_LINE:
                raise WireError(f"a line too long: more than {MAX_LINE} bytes without its end")
            self._tail = data
            return _EMPTY
        self._tail = data[end + 1 :]
        if len(self._tail) > MAX_LINE:
            raise WireError(f"a line too long: more than {MAX_LINE} bytes without its end")
        if self.done:
            return _EMPTY
        payloads: list[bytes] = []
        done_line = self._done_line
        for line in data[:end].split(b"\n"):
            if not line.startswith(b"data:"):
                continue  # blank separators, comments (keep-alive pings), event names
            payload = line[5:].strip()
            if payload == done_line:
                self.done = True
                break
            payloads.append(payload)
        if not payloads:
            return _EMPTY
        return self._chunk(_parse(payloads))

    def end(self) -> Chunk:
        """At the end of the body: a last line without its newline is a line too."""
        self.raise_pending()
        tail, self._tail = self._tail, b""
        return self.feed(tail + b"\n") if tail else _EMPTY

    def raise_pending(self) -> None:
        """Raise the error of an event that came after the ones ``feed`` last returned."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _chunk(self, parsed: list[Any]) -> Chunk:
        wire = self._wire
        if len(parsed) == 1 and not isinstance(parsed[0], _Bad):
            return wire.chunk(parsed[0])
        tokens: list[int] = []
        finish = None
        cached: int | None = None
        generated: int | None = None
        parts: list[Chunk] = []
        for data in parsed:
            try:
                if isinstance(data, _Bad):
                    raise data.error
                chunk = wire.chunk(data)
            except (WireError, orjson.JSONDecodeError) as exc:
                if not tokens and finish is None and cached is None:
                    raise
                self._error = exc
                break
            tokens += chunk.tokens
            if chunk.finish is not None:
                finish = chunk.finish
            if cached is None:
                cached = chunk.cached_tokens
            if chunk.generated is not None:
                generated = chunk.generated
            parts.append(chunk)
        if generated is None:
            return Chunk(tokens, finish, cached)
        # llama.cpp: an event may follow ids it withheld; its text and count tell which.
        return Chunk(tokens, finish, cached, generated, parts=tuple(parts))


class _Bad:
    """A payload that is not JSON, in its place among the parsed ones."""

    __slots__ = ("error",)

    def __init__(self, error: orjson.JSONDecodeError) -> None:
        self.error = error


def _parse(payloads: list[bytes]) -> list[Any]:
    """Each payload's JSON value: one ``orjson`` call for the lot when every one parses."""
    if len(payloads) > 1:
        try:
            values = orjson.loads(b"[" + b",".join(payloads) + b"]")
        except orjson.JSONDecodeError:
            pass
        else:
            # A payload holding "1,2" would pass joined; the count catches it (then one by one).
            if isinstance(values, list) and len(values) == len(payloads):
                return values
    out: list[Any] = []
    for payload in payloads:
        try:
            out.append(orjson.loads(payload))
        except orjson.JSONDecodeError as exc:
            out.append(_Bad(exc))
            break
    return out
