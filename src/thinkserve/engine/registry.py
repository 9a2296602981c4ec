"""Builds engines from their config entries (imports config, engine; llama.cpp lazily).

An engine runs either in the gateway's process (``inline``: the fake engine, tests) or in a
supervised process of its own (``engine.supervised``: the default for llama.cpp), where a native
crash cannot take the gateway down. The engine process calls ``build_inline`` itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from thinkserve.config import EngineSpec
from thinkserve.engine.base import Engine
from thinkserve.models.catalogue import ConfigError
from thinkserve.models.default import default_model_path


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


async def build_engine(spec: EngineSpec, path: Path, data_dir: Path) -> Engine:
    """Load the model and start the engine, in its own process where the spec says so."""
    if spec.kind not in ("llamacpp", "fake"):
        raise ConfigError(f"engine {spec.name!r}: unknown kind {spec.kind!r} (known: llamacpp, fake)")
    if not spec.own_process:
        return await build_inline(spec.kind, spec, str(path), str(data_dir))
    from thinkserve.engine.supervised.supervisor import SupervisedEngine
    from thinkserve.engine.supervised.wire import Start

    start = Start(spec.kind, spec, str(path), str(data_dir))
    if spec.kind == "fake":
        from thinkserve.engine.fake import FakeTokenizer

        engine = SupervisedEngine(spec.name, start, FakeTokenizer())
    else:
        from thinkserve.engine.llamacpp_state import install_native_logging
        from thinkserve.engine.llamacpp_tokenizer import VocabFile

        install_native_logging()
        vocab = await asyncio.to_thread(VocabFile, str(path))
        engine = SupervisedEngine(spec.name, start, vocab.tokenizer, close_tokenizer=vocab.close)
    try:
        await engine.start()
    except BaseException:
        await engine.aclose()
        raise
    return engine


async def build_inline(kind: str, settings: Any, model_path: str, data_dir: str) -> Engine:
    """The engine itself, in this process."""
    if kind == "fake":
        # A scripted engine for gateway benchmarks and platform tests: no model file needed.
        # Fault tests script it further with a mapping of FakeEngine's own arguments.
        from thinkserve.engine.fake import FakeEngine

        if isinstance(settings, dict):
            return FakeEngine(**settings)
        assert isinstance(settings, EngineSpec)
        return FakeEngine(context_length=settings.n_ctx, max_queue=settings.max_queue)
    assert isinstance(settings, EngineSpec)
    from thinkserve.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(
        model_path,
        n_ctx=settings.n_ctx,
        n_seq=settings.n_seq,
        n_threads=settings.n_threads,
        max_queue=settings.max_queue,
        amx=settings.amx,
        proof_dir=Path(data_dir),
    )
    # Loading takes seconds: keep the event loop free meanwhile.
    await asyncio.to_thread(engine.start)
    return engine
