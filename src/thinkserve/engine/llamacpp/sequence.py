"""The worker's state of one sequence and the channel back to its consumer (pure Python).

Imports core, engine.protocol and engine.checkpoint; nothing here touches llama.cpp, so the
scheduler built on it is tested without a model file.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.checkpoint import CheckpointState
from thinkserve.engine.protocol import EngineFinished, EngineRequest, Paused, TokenEvent

if TYPE_CHECKING:
    from thinkserve.engine.llamacpp.slots import Slot

log = logging.getLogger("thinkserve.engine.llamacpp")

#: What a sequence's event stream carries: an event, or the error that ends it.
Outgoing = TokenEvent | Paused | EngineFinished | EngineFailure

GENERIC_FAILURE = "The inference engine failed while generating this response."


class Channel(Protocol):
    """The part of a sequence handle that the worker sees."""

    @property
    def request(self) -> EngineRequest: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def cancelled(self) -> bool: ...

    def set_slot(self, slot: int | None) -> None:
        """Record the KV slot (llama.cpp sequence id) now holding the sequence (worker thread)."""
        ...

    def push(self, item: Outgoing) -> None:
        """Deliver one item (always called on ``loop``)."""
        ...


class Decoder(Protocol):
    """Incremental detokenization of one sequence (``tokenizer.StreamDecoder``)."""

    def feed(self, token: int) -> str: ...

    def flush(self) -> str: ...


class SeqState:
    """The worker's view of one sequence."""

    __slots__ = (
        "arrival",
        "cached_tokens",
        "channel",
        "checkpoint",
        "constraint",
        "decoder",
        "greedy",
        "n_kv",
        "prefill_end",
        "prompt_len",
        "request",
        "sampled",
        "sampler",
        "slot",
        "tokens",
    )

    def __init__(self, channel: Channel, arrival: int, decoder: Decoder) -> None:
        self.channel = channel
        self.request = channel.request
        self.tokens: list[int] = list(self.request.prompt)
        """Everything that belongs in the KV cache: prompt, then sampled and injected tokens."""
        self.prompt_len = len(self.tokens)
        self.n_kv = 0
        """``tokens[:n_kv]`` are in the slot's KV cells; the rest are pending."""
        self.prefill_end = 0
        """Until ``n_kv`` reaches this, the pending tokens are prefill (chunked, lower priority)."""
        self.slot: Slot | None = None
        sp = self.request.sampling
        self.greedy = sp.temperature <= 0.0 and sp.repetition_penalty == 1.0 and sp.presence_penalty == 0.0
        """Plain greedy: the argmax of the logits, read directly (see ``Worker._sample``)."""
        self.sampler: Any = None
        """The native sampler chain (None for plain greedy); the worker builds and frees it."""
        self.sampled = 0
        self.cached_tokens = -1
        """Prompt tokens reused at the first admission (-1 until admitted)."""
        self.arrival = arrival
        self.checkpoint = CheckpointState(self.request.checkpoint)
        """Armed and paused state; the scheduler reads ``checkpoint.paused``."""
        self.constraint: Any = None
        """Constrained decoding (``engine.llamacpp.grammar.ConstraintState``) when the request
        asks for it; the worker sets it up and frees it."""
        self.decoder = decoder

    @property
    def pending(self) -> int:
        return len(self.tokens) - self.n_kv


def send(outbox: list[tuple[Channel, Outgoing]]) -> None:
    """Deliver items to their channels: one ``call_soon_threadsafe`` per event loop, not per item."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Channel, Outgoing]]] = {}
    for channel, item in outbox:
        by_loop.setdefault(channel.loop, []).append((channel, item))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_push_all, items)
        except RuntimeError:
            # The loop is closed: nobody is listening to these sequences any more.
            log.debug("dropping %d events for a closed event loop", len(items))


def _push_all(items: list[tuple[Channel, Outgoing]]) -> None:
    for channel, item in items:
        channel.push(item)
