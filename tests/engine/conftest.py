"""Fixtures for the llama.cpp engine tests: the tiny Qwen3 model and engines over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from thinkserve.engine.llamacpp.engine import LlamaCppEngine

TINY_MODEL = Path(__file__).parent.parent / "fixtures" / "tiny-qwen3.gguf"


def engine_model() -> Path:
    """The model the engine tests run (THINKSERVE_ENGINE_TEST_MODEL overrides the tiny one)."""
    override = os.environ.get("THINKSERVE_ENGINE_TEST_MODEL")
    path = Path(override) if override else TINY_MODEL
    if not path.is_file():
        pytest.skip(f"{path} is missing (the tiny test model is built by scripts/make_tiny_model.py)")
    return path


@pytest.fixture(scope="module")
def model_path() -> Path:
    return engine_model()


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Iterator[LlamaCppEngine]:
    """A shared engine; tests compare stats before and after instead of assuming zeros."""
    eng = LlamaCppEngine(str(model_path), n_ctx=4096, n_seq=4, n_batch=512)
    eng.start()
    try:
        yield eng
    finally:
        eng.close()
