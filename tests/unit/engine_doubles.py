"""Stand-ins for what the llama.cpp scheduler and slot pool see of the worker: no model needed."""

from __future__ import annotations

from collections.abc import Sequence

from thinkserve.core.types import SamplingParams
from thinkserve.engine.llamacpp.scheduler import Scheduler
from thinkserve.engine.llamacpp.sequence import Outgoing, SeqState
from thinkserve.engine.llamacpp.slots import SlotPool
from thinkserve.engine.protocol import Checkpoint, EngineRequest


class Cells:
    """The KV cache: records every removal; ``suffix_ok=False`` acts like recurrent memory."""

    def __init__(self, *, suffix_ok: bool = True) -> None:
        self.removed: list[tuple[int, int]] = []
        self.suffix_ok = suffix_ok

    def remove(self, seq_id: int, start: int) -> bool:
        self.removed.append((seq_id, start))
        return start == 0 or self.suffix_ok


class Channel:
    def __init__(self, prompt: Sequence[int], rid: str, checkpoint: Checkpoint | None = None) -> None:
        self.request = EngineRequest(rid, list(prompt), SamplingParams(temperature=0.0), 1000, checkpoint)
        self.loop = None
        self.cancelled = False
        self.slots: list[int | None] = []

    def set_slot(self, slot: int | None) -> None:
        self.slots.append(slot)

    def push(self, item: Outgoing) -> None:
        raise AssertionError("the scheduler never delivers")


class Decoder:
    def feed(self, token: int) -> str:
        return ""

    def flush(self) -> str:
        return ""


class Hooks:
    def __init__(self) -> None:
        self.refuse: set[str] = set()
        self.prepared: list[str] = []
        self.discarded: list[str] = []
        self.dequeued_count = 0

    def prepare(self, seq: SeqState) -> bool:
        self.prepared.append(seq.request.request_id)
        return seq.request.request_id not in self.refuse

    def discard(self, seq: SeqState) -> None:
        self.discarded.append(seq.request.request_id)

    def dequeued(self) -> None:
        self.dequeued_count += 1


class Bench:
    """A scheduler over fake cells, plus the worker's side of a step."""

    def __init__(
        self,
        *,
        n_seq: int = 2,
        kv_size: int = 64,
        unified: bool = True,
        n_batch: int = 64,
        prefill_chunk: int = 16,
        suffix_ok: bool = True,
    ) -> None:
        self.cells = Cells(suffix_ok=suffix_ok)
        self.hooks = Hooks()
        self.pool = SlotPool(n_seq, self.cells)
        self.sched = Scheduler(
            self.pool,
            self.hooks,
            kv_size=kv_size,
            unified=unified,
            n_batch=n_batch,
            prefill_chunk=prefill_chunk,
        )

    def submit(self, prompt: Sequence[int], rid: str, checkpoint: Checkpoint | None = None) -> SeqState:
        return self.sched.submit(Channel(prompt, rid, checkpoint), Decoder())  # type: ignore[arg-type]

    def step(self, *, sample: int | None = 7) -> list[tuple[str, int]]:
        """Plan a batch, "evaluate" it, and append ``sample`` to every sequence that got logits."""
        plan = self.sched.fit()
        for seq, n in plan:
            seq.n_kv += n
            if sample is not None and seq.n_kv == len(seq.tokens):
                seq.tokens.append(sample)
                seq.sampled += 1
        return [(seq.request.request_id, n) for seq, n in plan]
