"""Engines by kind: each kind's settings type and how to build it (imports engine settings;
each engine itself, and the supervised process, only when one is built).

A new engine is a package under ``engine/`` plus one ``EngineKind`` in ``KINDS``::

    [engines.default]
    kind = "llamacpp"            # the key of the kind (default "llamacpp")
    n_ctx = 16384                # ...then the keys of its settings type (``TOML_KEYS``)

An engine runs either in the gateway's process (``own_process = false``: the fake engine's
default, tests) or in a supervised process of its own (``engine.supervised``: the default for
llama.cpp), where a native crash cannot take the gateway down. The engine process calls
``build_inline`` itself; the gateway then keeps only the kind's ``vocabulary``.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from thinkserve.core.errors import ConfigError
from thinkserve.default_model import default_model_path
from thinkserve.engine.fake.settings import FakeSettings
from thinkserve.engine.llamacpp.settings import LlamaCppSettings
from thinkserve.engine.protocol import Engine, Tokenizer
from thinkserve.engine.remote.settings import RemoteSettings
from thinkserve.engine.vllm.settings import VllmSettings

#: A config value's type, or the strings it may be.
KeyType = type | tuple[str, ...]


class EngineSettings(Protocol):
    """One ``[engines.NAME]`` table, parsed into its kind's frozen dataclass."""

    TOML_KEYS: ClassVar[Mapping[str, KeyType]]
    """The keys the table may hold besides ``kind``, and the type of each."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def own_process(self) -> bool:
        """Run the engine in a supervised process of its own."""
        ...


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The gateway's tokenizer for an engine that runs in a process of its own."""

    tokenizer: Tokenizer
    close: Callable[[], None] | None = None


S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class EngineKind(Generic[S]):
    """How one kind of engine is configured and built."""

    settings: Callable[[str], S]
    """The settings dataclass, called with the engine's name for its defaults."""
    model_file: Callable[[S, Path], Path]
    """The file it serves (shown in model cards); ``data_dir`` holds the default model."""
    build: Callable[[S, str, str], Awaitable[Engine]]
    """Load the model and start the engine in this process: (settings, model path, data dir)."""
    vocabulary: Callable[[S, Path], Awaitable[Vocabulary]]
    """The tokenizer the gateway keeps while the engine runs in its own process."""


DEFAULT_KIND = "llamacpp"


def default_engine(name: str = "default") -> EngineSettings:
    """The engine every catalogue name uses when the config names none."""
    settings: EngineSettings = KINDS[DEFAULT_KIND].settings(name)
    return settings


def settings_from_table(name: str, table: Mapping[str, Any]) -> EngineSettings:
    """Parse ``[engines.NAME]``; raises ``ConfigError`` for an unknown kind, key or bad value."""
    kind = table.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str) or kind not in KINDS:
        known = ", ".join(KINDS)
        raise ConfigError(f"engine {name!r}: unknown kind {kind!r} (known: {known})")
    settings: Any = KINDS[kind].settings(name)
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key == "kind":
            continue
        expected = settings.TOML_KEYS.get(key)
        if expected is None:
            raise ConfigError(f"unknown key {key!r} in engine {name!r}")
        if not _fits(value, expected):
            raise ConfigError(f"bad value {value!r} for {key!r} in engine {name!r}")
        changes[key] = value
    changed: EngineSettings = replace(settings, **changes)
    return changed


def _fits(value: object, expected: KeyType) -> bool:
    if isinstance(expected, tuple):
        return isinstance(value, str) and value in expected
    # TOML booleans are ints to Python: only a bool key takes one. A float key takes an integer.
    if isinstance(value, bool):
        return expected is bool
    return isinstance(value, expected) or (expected is float and isinstance(value, int))


def model_file(settings: EngineSettings, data_dir: Path) -> Path:
    """The file an engine serves (the default model is assembled on first use)."""
    return KINDS[settings.kind].model_file(settings, data_dir)


async def build_engine(settings: EngineSettings, path: Path, data_dir: Path) -> Engine:
    """Load the model and start the engine, in its own process where the settings say so."""
    kind = KINDS[settings.kind]
    if not settings.own_process:
        return await kind.build(settings, str(path), str(data_dir))
    from thinkserve.engine.supervised.supervisor import SupervisedEngine
    from thinkserve.engine.supervised.wire import Start

    vocabulary = await kind.vocabulary(settings, path)
    start = Start(settings.kind, settings, str(path), str(data_dir))
    engine = SupervisedEngine(
        settings.name,
        start,
        vocabulary.tokenizer,
        close_tokenizer=vocabulary.close,
        hang_timeout=float(getattr(settings, "hang_timeout", 60.0)),
    )
    try:
        await engine.start()
    except BaseException:
        await engine.aclose()
        raise
    return engine


async def build_inline(kind: str, settings: Any, model_path: str, data_dir: str) -> Engine:
    """The engine itself, in this process (the engine process builds its engine with this)."""
    return await KINDS[kind].build(settings, model_path, data_dir)


# -- llama.cpp ------------------------------------------------------------------------------------


def _llamacpp_file(settings: LlamaCppSettings, data_dir: Path) -> Path:
    if settings.model is None:
        return default_model_path(data_dir)
    path = Path(settings.model).expanduser()
    if not path.is_file():
        raise ConfigError(f"engine {settings.name!r}: model file {path} does not exist")
    return path


async def _build_llamacpp(settings: LlamaCppSettings, model_path: str, data_dir: str) -> Engine:
    from thinkserve.engine.llamacpp.engine import LlamaCppEngine

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


async def _llamacpp_vocabulary(settings: LlamaCppSettings, path: Path) -> Vocabulary:
    from thinkserve.engine.llamacpp.native import install_native_logging
    from thinkserve.engine.llamacpp.tokenizer import VocabFile

    install_native_logging()
    vocab = await asyncio.to_thread(VocabFile, str(path))
    return Vocabulary(vocab.tokenizer, vocab.close)


# -- the scripted engine --------------------------------------------------------------------------


def _fake_file(settings: FakeSettings, data_dir: Path) -> Path:
    return Path("fake")


async def _build_fake(settings: FakeSettings | Mapping[str, Any], model_path: str, data_dir: str) -> Engine:
    from thinkserve.engine.fake.engine import FakeEngine

    if isinstance(settings, Mapping):
        # Fault tests script it further with a mapping of FakeEngine's own arguments.
        return FakeEngine(**settings)
    return FakeEngine(
        context_length=settings.n_ctx,
        max_queue=settings.max_queue,
        delay=settings.delay,
        answer=settings.answer,
    )


async def _fake_vocabulary(settings: FakeSettings, path: Path) -> Vocabulary:
    from thinkserve.engine.fake.tokenizer import FakeTokenizer

    return Vocabulary(FakeTokenizer())


# -- vLLM ------------------------------------------------------------------------------------------


def _vllm_dir(settings: VllmSettings, data_dir: Path) -> Path:
    if settings.model is None:
        raise ConfigError(f"engine {settings.name!r}: kind 'vllm' needs a model directory (model = ...)")
    path = Path(settings.model).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"engine {settings.name!r}: {path} is not a model directory (no config.json)")
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            f"engine {settings.name!r} needs vLLM, which is not installed: run `make install-vllm`"
        )
    return path


async def _build_vllm(settings: VllmSettings, model_path: str, data_dir: str) -> Engine:
    from thinkserve.engine.vllm.engine import VllmEngine

    engine = VllmEngine(settings, model_path)
    try:
        await engine.start()
    except BaseException:
        await engine.aclose()
        raise
    return engine


async def _vllm_vocabulary(settings: VllmSettings, path: Path) -> Vocabulary:
    from thinkserve.engine.vllm.tokenizer import HfTokenizer

    return Vocabulary(await asyncio.to_thread(HfTokenizer.load, str(path)))


# -- a pool of remote engine servers --------------------------------------------------------------


def _remote_file(settings: RemoteSettings, data_dir: Path) -> Path:
    settings.check()
    assert settings.tokenizer is not None
    return Path(settings.tokenizer).expanduser()


async def _build_remote(settings: RemoteSettings, model_path: str, data_dir: str) -> Engine:
    from thinkserve.engine.remote.engine import build_remote

    return await build_remote(settings)


async def _remote_vocabulary(settings: RemoteSettings, path: Path) -> Vocabulary:
    from thinkserve.engine.remote.vocab import load_vocab

    vocab = await asyncio.to_thread(load_vocab, str(path))
    return Vocabulary(vocab.tokenizer, vocab.close)


KINDS: Mapping[str, EngineKind[Any]] = MappingProxyType(
    {
        "llamacpp": EngineKind(LlamaCppSettings, _llamacpp_file, _build_llamacpp, _llamacpp_vocabulary),
        # A scripted engine for gateway benchmarks and platform tests: no model file needed.
        "fake": EngineKind(FakeSettings, _fake_file, _build_fake, _fake_vocabulary),
        # vLLM's AsyncLLM on a Hugging Face directory (optional: make install-vllm).
        "vllm": EngineKind(VllmSettings, _vllm_dir, _build_vllm, _vllm_vocabulary),
        # Engine servers elsewhere (vLLM, llama.cpp server), driven at the token level.
        "remote": EngineKind(RemoteSettings, _remote_file, _build_remote, _remote_vocabulary),
    }
)
