"""LlamaCppEngine.health(): starting, up while the worker lives, down with a reason, stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.llamacpp.engine import LlamaCppEngine
from thinkserve.engine.protocol import Health


def test_a_model_that_cannot_load_is_down_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    engine = LlamaCppEngine(str(missing), n_ctx=256, n_seq=1, n_batch=64, proof_dir=tmp_path)
    assert engine.health() == Health("starting", "Not started.")
    with pytest.raises(EngineFailure):
        engine.start()
    health = engine.health()
    assert health.state == "down" and health.reason


@pytest.mark.slow
def test_up_while_running_stopped_once_closed(model_path: Path, tmp_path: Path) -> None:
    engine = LlamaCppEngine(str(model_path), n_ctx=256, n_seq=1, n_batch=64, proof_dir=tmp_path)
    engine.start()
    try:
        health = engine.health()
        assert health.state == "up" and health.reason.startswith("llama.cpp")
        stats = engine.snapshot()
        assert stats.kv_size == engine.stats.kv_size > 0 and stats.active_sequences == 0
    finally:
        engine.close()
    assert engine.health() == Health("stopped")
