"""Engines by kind: each kind's settings type and how to build it (imports engine settings;
each engine itself is imported only when one of its kind is built).

A new engine is a package under ``engine/`` plus one ``EngineKind`` in ``KINDS``::

    [engines.default]
    kind = "llamacpp"            # the key of the kind (default "llamacpp")
    n_ctx = 16384                # ...then the keys of its settings type (``TOML_KEYS``)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from thinkserve.engine.fake.settings import FakeSettings
from thinkserve.engine.llamacpp.settings import LlamaCppSettings
from thinkserve.engine.protocol import Engine
from thinkserve.models.catalogue import ConfigError
from thinkserve.models.default import default_model_path


class EngineSettings(Protocol):
    """One ``[engines.NAME]`` table, parsed into its kind's frozen dataclass."""

    TOML_KEYS: ClassVar[Mapping[str, type]]
    """The keys the table may hold besides ``kind``, and the type of each."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class EngineKind(Generic[S]):
    """How one kind of engine is configured and built."""

    settings: Callable[[str], S]
    """The settings dataclass, called with the engine's name for its defaults."""
    model_file: Callable[[S, Path], Path]
    """The file it serves (shown in model cards); ``data_dir`` holds the default model."""
    build: Callable[[S, Path], Awaitable[Engine]]
    """Load the model and start the engine (imports the engine's own modules)."""


DEFAULT_KIND = "llamacpp"


def _kind(settings: EngineSettings) -> EngineKind[Any]:
    return KINDS[settings.kind]


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
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"bad value {value!r} for {key!r} in engine {name!r}")
        changes[key] = value
    changed: EngineSettings = replace(settings, **changes)
    return changed


def model_file(settings: EngineSettings, data_dir: Path) -> Path:
    """The file an engine serves (the default model is assembled on first use)."""
    return _kind(settings).model_file(settings, data_dir)


async def build_engine(settings: EngineSettings, path: Path) -> Engine:
    """Load the model and start the engine."""
    return await _kind(settings).build(settings, path)


def _llamacpp_file(settings: LlamaCppSettings, data_dir: Path) -> Path:
    if settings.model is None:
        return default_model_path(data_dir)
    path = Path(settings.model).expanduser()
    if not path.is_file():
        raise ConfigError(f"engine {settings.name!r}: model file {path} does not exist")
    return path


async def _build_llamacpp(settings: LlamaCppSettings, path: Path) -> Engine:
    from thinkserve.engine.llamacpp.engine import LlamaCppEngine

    engine = LlamaCppEngine(
        str(path),
        n_ctx=settings.n_ctx,
        n_seq=settings.n_seq,
        n_threads=settings.n_threads,
        max_queue=settings.max_queue,
    )
    # Loading takes seconds: keep the event loop free meanwhile.
    await asyncio.to_thread(engine.start)
    return engine


async def _build_fake(settings: FakeSettings, path: Path) -> Engine:
    from thinkserve.engine.fake.engine import FakeEngine

    return FakeEngine(context_length=settings.n_ctx, max_queue=settings.max_queue)


def _fake_file(settings: FakeSettings, data_dir: Path) -> Path:
    return Path("fake")


KINDS: Mapping[str, EngineKind[Any]] = MappingProxyType(
    {
        "llamacpp": EngineKind(LlamaCppSettings, _llamacpp_file, _build_llamacpp),
        # A scripted engine for gateway benchmarks and platform tests: no model file needed.
        "fake": EngineKind(FakeSettings, _fake_file, _build_fake),
    }
)
