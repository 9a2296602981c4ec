"""Values shared by the llama.cpp worker and its engine front: configuration, stats, the commands
sent to the worker thread and the worker's per-slot and per-sequence state (imports core, engine).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import llama_cpp

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.base import EngineFinished, EngineRequest, Paused, TokenEvent
from thinkserve.engine.llamacpp_cpu import AmxPolicy
from thinkserve.engine.llamacpp_tokenizer import StreamDecoder

_native_log = logging.getLogger("thinkserve.engine.llamacpp.native")

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


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    model_path: str
    n_ctx: int
    n_seq: int
    n_threads: int
    n_batch: int
    prefill_chunk: int
    kv_unified: bool
    n_gpu_layers: int
    flash_attn: bool | None
    penalty_last_n: int
    amx: AmxPolicy = "auto"
    proof_dir: Path | None = None
    """Where the AMX probe keeps its verdicts (None: the default data directory)."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of the engine's counters, published by the worker after every step."""

    prompt_tokens_evaluated: int = 0
    """Prompt tokens fed to ``llama_decode`` (reused prefixes excluded)."""
    generated_tokens_evaluated: int = 0
    """Sampled tokens fed back plus injected tokens."""
    cached_prompt_tokens: int = 0
    """Prompt tokens reused from the KV cache instead of being evaluated."""
    sampled_tokens: int = 0
    injected_tokens: int = 0
    decode_calls: int = 0
    multi_seq_decode_calls: int = 0
    """``llama_decode`` calls that carried tokens of more than one sequence."""
    max_batch_seqs: int = 0
    max_batch_tokens: int = 0
    preemptions: int = 0
    active_sequences: int = 0
    """Sequences holding a slot (running, prefilling or paused)."""
    paused_sequences: int = 0
    waiting: int = 0
    """Requests submitted and not yet holding a slot (the queue depth)."""
    slot_cells: tuple[int, ...] = ()
    """KV cells used per slot (index = llama.cpp sequence id), as llama.cpp reports them."""
    kv_size: int = 0


# ---------------------------------------------------------------------------------------------
# Commands from the event loop


@dataclass(frozen=True, slots=True)
class Submit:
    channel: Channel


@dataclass(frozen=True, slots=True)
class ResumeCmd:
    channel: Channel
    tokens: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Cancel:
    channel: Channel


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Command = Submit | ResumeCmd | Cancel | Stop


# ---------------------------------------------------------------------------------------------
# Worker-side state


class Slot:
    """A llama.cpp sequence id and the tokens whose KV cells it holds."""

    __slots__ = ("cached", "last_used", "owner", "seq_id")

    def __init__(self, seq_id: int) -> None:
        self.seq_id = seq_id
        self.cached: list[int] = []
        """Tokens in the KV cache while the slot is idle (the owner's ``tokens[:n_kv]`` otherwise)."""
        self.owner: SeqState | None = None
        self.last_used = 0

    @property
    def cells(self) -> int:
        return self.owner.n_kv if self.owner is not None else len(self.cached)


class SeqState:
    """The worker's view of one sequence."""

    __slots__ = (
        "armed",
        "arrival",
        "cached_tokens",
        "channel",
        "decoder",
        "greedy",
        "marker_tail",
        "n_kv",
        "paused",
        "prefill_end",
        "prompt_len",
        "request",
        "sampled",
        "sampler",
        "slot",
        "tokens",
    )

    def __init__(self, channel: Channel, arrival: int, decoder: StreamDecoder) -> None:
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
        self.sampled = 0
        self.cached_tokens = -1
        """Prompt tokens reused at the first admission (-1 until admitted)."""
        self.arrival = arrival
        self.paused = False
        self.armed = self.request.checkpoint is not None
        self.marker_tail = ""
        self.decoder = decoder

    @property
    def pending(self) -> int:
        return len(self.tokens) - self.n_kv


def push_all(items: list[tuple[Channel, Outgoing]]) -> None:
    for channel, item in items:
        channel.push(item)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n
    # Binary search on slice equality: list comparison runs in C, a Python loop would not.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def marker_seen(seq: SeqState, marker: str | None, text: str) -> bool:
    """Whether ``marker`` appears in the output, counting matches split across tokens."""
    if not marker or not text:
        return False
    window = seq.marker_tail + text
    if marker in window:
        return True
    seq.marker_tail = window[-(len(marker) - 1) :] if len(marker) > 1 else ""
    return False


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _native_log_callback(level: int, text: bytes, user_data: Any) -> None:
    # ggml_log_level: 1 DEBUG, 2 INFO, 3 WARN, 4 ERROR, 5 CONT (continues the previous line).
    # llama.cpp is chatty at INFO (every tensor of the model); that belongs at DEBUG here.
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        py_level = logging.WARNING if level == 3 else logging.ERROR if level == 4 else logging.DEBUG
        _native_log.log(py_level, "%s", message)


def install_native_logging() -> None:
    """Route llama.cpp's own log lines (process-wide) into ``logging`` instead of stderr."""
    llama_cpp.llama_log_set(_native_log_callback, None)
