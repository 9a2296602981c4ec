"""The llama.cpp engine's counters, published by the worker after every step (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from thinkserve.engine.protocol import EngineStats

#: The counters the worker bumps in its decode step (a plain dict there: cheapest to update).
STEP_COUNTERS = (
    "prompt_tokens_evaluated",
    "generated_tokens_evaluated",
    "sampled_tokens",
    "injected_tokens",
    "decode_calls",
    "multi_seq_decode_calls",
    "max_batch_seqs",
    "max_batch_tokens",
)


@dataclass(frozen=True, slots=True)
class LlamaCppStats:
    """A snapshot of the engine's counters."""

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

    def summary(self) -> EngineStats:
        """What every engine reports (``Engine.snapshot``)."""
        return EngineStats(
            active_sequences=self.active_sequences,
            waiting=self.waiting,
            sampled_tokens=self.sampled_tokens,
            kv_cells_used=sum(self.slot_cells),
            kv_size=self.kv_size,
        )
