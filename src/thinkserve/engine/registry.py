"""Builds engines from their config entries (imports config, engine; llama.cpp lazily)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from thinkserve.config import EngineSpec
from thinkserve.core.errors import ConfigError
from thinkserve.default_model import default_model_path
from thinkserve.engine.base import Engine


def model_file(spec: EngineSpec, data_dir: Path) -> Path:
    """The GGUF an engine serves (the default model is assembled on first use)."""
    if spec.kind == "fake":
        return Path("fake")
    if spec.model is None:
        return default_model_path(data_dir)
    path = Path(spec.model).expanduser()
    if not path.is_file():
        raise ConfigError(f"engine {spec.name!r}: model file {path} does not exist")
    return path


async def build_engine(spec: EngineSpec, path: Path) -> Engine:
    """Load the model and start the engine."""
    if spec.kind == "fake":
        # A scripted engine for gateway benchmarks and platform tests: no model file needed.
        from thinkserve.engine.fake import FakeEngine

        return FakeEngine(context_length=spec.n_ctx, max_queue=spec.max_queue)
    if spec.kind != "llamacpp":
        raise ConfigError(f"engine {spec.name!r}: unknown kind {spec.kind!r} (known: llamacpp, fake)")
    from thinkserve.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(
        str(path), n_ctx=spec.n_ctx, n_seq=spec.n_seq, n_threads=spec.n_threads, max_queue=spec.max_queue
    )
    # Loading takes seconds: keep the event loop free meanwhile.
    await asyncio.to_thread(engine.start)
    return engine
