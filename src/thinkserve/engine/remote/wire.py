"""What every upstream protocol shares: the request it builds, the chunks it reads (imports core).

An upstream protocol (``vllm_wire``, ``llamacpp_wire``) is a pure translation between token ids
and one server's JSON, so that the transport (``upstream``) and the sequence logic
(``sequence``) never see a wire field::

    wire.body(prompt=[151644, 872, ...], max_tokens=50, sampling=..., model="Qwen/Qwen3-8B", stream=True)
    wire.chunk({...one SSE data object...}) -> Chunk(tokens=(4340, 11), finish=None)
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from thinkserve.core.types import SamplingParams

Finish = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one streamed object says: new token ids, maybe the end, maybe the prompt's usage."""

    tokens: Seq[int] = ()
    finish: Finish | None = None
    """``stop``: an end-of-generation token (or stop string); ``length``: ``max_tokens`` or the
    server's context was reached."""
    cached_tokens: int | None = None
    """Prompt tokens the server took from its prefix cache, where it reports them."""
    generated: int | None = None
    """The server's count of tokens sampled so far in this completion, where a chunk tells it
    (llama.cpp's ``tokens_predicted``): ahead of the ids received, it withheld some (``pieces``)."""
    text: str = ""
    """The chunk's text, where the server sends it (llama.cpp: withheld tokens' bytes included)."""
    parts: tuple[Chunk, ...] = ()
    """The chunks of several events read at once (``events``), where they count their tokens
    (``generated``): ``tokens`` and ``generated`` are then the lot's, and ids withheld before any
    of them are recovered part by part."""


class WireError(Exception):
    """The upstream's reply says it failed, or cannot be read as its protocol."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a probe learned of a server: ``ServerInfo("vllm", 32768, "Qwen/Qwen3-8B")``."""

    protocol: Literal["vllm", "llamacpp"]
    context_length: int | None
    model: str | None = None


class Wire(Protocol):
    """One server protocol; pure functions of JSON-ready values."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str:
        """The completion endpoint (``/v1/completions``)."""
        ...

    @property
    def done_line(self) -> str | None:
        """An SSE data line that ends the stream (``[DONE]``), if the protocol has one."""
        ...

    def body(
        self, prompt: Seq[int], max_tokens: int, sampling: SamplingParams, model: str | None, *, stream: bool
    ) -> Any:
        """The JSON body of a completion request: streamed, or answered whole (one object that
        ``chunk`` reads like a stream's last event, with every token)."""
        ...

    def chunk(self, data: Any) -> Chunk:
        """Read one streamed JSON object; raises ``WireError`` for an error object."""
        ...


def int_or_none(value: object) -> int | None:
    """A JSON integer, or None for anything else (booleans included)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def token_list(value: object) -> list[int]:
    """A JSON list of token ids; raises ``WireError`` for anything else."""
    if value is None:
        return []
    # One C pass over the types (a whole completion holds every id): ints, and no bools.
    if not isinstance(value, list) or not _INT.issuperset(map(type, value)):
        raise WireError(f"expected a list of token ids, got {str(value)[:80]}")
    return value


_INT = frozenset((int,))


def error_message(data: object) -> str | None:
    """The message of an error object in either server's shape, or None for a normal chunk::

    {"error": {"message": "...", "type": "BadRequestError", "code": 400}}   (vLLM, llama.cpp)
    {"object": "error", "message": "...", "code": 400}                      (older vLLM)
    """
    if not isinstance(data, dict):
        return "the reply is not a JSON object"
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if isinstance(error, str):
        return error
    if data.get("object") == "error":
        return str(data.get("message") or "error")
    return None
