"""Each engine's live figures, read the same way by ``GET /metrics`` and ``GET /admin/v1/engines``
(imports engine.protocol).

One engine, as ``GET /admin/v1/engines`` shows it (``slots``: sequences it decodes at once, None for
an engine without slots; ``kv_size`` 0: no KV cache)::

    {"name": "default", "state": "up", "reason": "llama.cpp, zen4 backend", "restarts": 0,
     "slots": 8, "active_sequences": 2, "queue_depth": 0, "sampled_tokens": 18211,
     "kv_cells_used": 3100, "kv_size": 65536}

Decode tokens per second is the rate of ``sampled_tokens`` between two readings, as Prometheus
computes ``rate(thinkserve_engine_sampled_tokens_total[…])``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from thinkserve.engine.protocol import Engine


@dataclass(frozen=True, slots=True)
class EngineFigures:
    name: str
    state: str
    reason: str
    restarts: int
    slots: int | None
    active_sequences: int
    queue_depth: int
    sampled_tokens: int
    kv_cells_used: int
    kv_size: int

    @property
    def up(self) -> bool:
        return self.state == "up"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def engine_figures(
    engines: Mapping[str, Engine], slots: Mapping[str, int | None] | None = None
) -> list[EngineFigures]:
    """The figures of every engine now, in the order given; ``slots``: engine -> ``n_seq``."""
    out: list[EngineFigures] = []
    for name, engine in engines.items():
        health = engine.health()
        stats = engine.snapshot()
        out.append(
            EngineFigures(
                name=name,
                state=health.state,
                reason=health.reason,
                restarts=health.restarts,
                slots=(slots or {}).get(name),
                active_sequences=stats.active_sequences,
                queue_depth=stats.waiting,
                sampled_tokens=stats.sampled_tokens,
                kv_cells_used=stats.kv_cells_used,
                kv_size=stats.kv_size,
            )
        )
    return out
