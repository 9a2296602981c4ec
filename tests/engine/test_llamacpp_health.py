"""LlamaCppEngine.health(): starting, up while the worker lives, down with a reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.llamacpp.engine import LlamaCppEngine
from thinkserve.engine.protocol import Health


def test_a_model_that_cannot_load_is_down_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    engine = LlamaCppEngine(str(missing), n_ctx=256, n_seq=1, n_batch=64)
    assert asyncio.run(engine.health()) == Health("starting", "Not started.")
    with pytest.raises(EngineFailure):
        engine.start()
    health = asyncio.run(engine.health())
    assert health.state == "down" and str(missing) in health.reason


@pytest.mark.slow
def test_up_while_running_down_once_closed(model_path: Path) -> None:
    engine = LlamaCppEngine(str(model_path), n_ctx=256, n_seq=1, n_batch=64)
    engine.start()
    try:
        assert asyncio.run(engine.health()) == Health("up")
        stats = engine.snapshot()
        assert stats.kv_size == engine.stats.kv_size > 0 and stats.active_sequences == 0
    finally:
        engine.close()
    assert asyncio.run(engine.health()) == Health("down", "The inference engine is closed.")
