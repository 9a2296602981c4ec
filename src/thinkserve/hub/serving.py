"""Pulled weights in the server's settings, without the network unless ``serve --pull`` asks.

- ``hf://`` and ``modelscope://`` references in ``--model`` and ``[engines.X] model`` become the cached
  files (the first part of a split GGUF); one not in the cache is an error naming the pull to run,
  or is pulled first with ``--pull``.
- A name pulled with ``thinkserve pull NAME`` is served by its own file, on an engine of its own
  (``pulled-NAME``), with the model's own chat template: unless ``--model`` serves every name, or
  the config maps the name to an engine other than ``default``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

from thinkserve.config import Settings
from thinkserve.core.errors import ConfigError
from thinkserve.engine.llamacpp.settings import LlamaCppSettings
from thinkserve.engine.registry import EngineSettings
from thinkserve.hub.manifest import Manifest
from thinkserve.hub.puller import hub_for, pull_reference, record
from thinkserve.hub.reference import Reference, ReferenceError, is_reference, split_parts
from thinkserve.hub.remote import Hub
from thinkserve.hub.transfer import Reporter

log = logging.getLogger(__name__)


def cached_file(ref: Reference, hub: Hub) -> Path | None:
    """The file llama.cpp opens for ``ref`` when every part is cached; None otherwise (no network)."""
    paths = [hub.cached(ref.with_path(p)) for p in split_parts(ref.path)]
    if any(p is None for p in paths):
        return None
    return paths[0]


def resolve_references(
    settings: Settings,
    *,
    pull: bool,
    reporter: Callable[[], AbstractContextManager[Reporter]],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Replace every hub reference among the engines' models by its cached file."""
    engines: dict[str, EngineSettings] = {}
    for name, engine in settings.engines.items():
        model = getattr(engine, "model", None)
        if isinstance(model, str) and is_reference(model):
            try:
                ref = Reference.parse(model)
            except ReferenceError as exc:
                raise ConfigError(f"engine {name!r}: {exc}") from exc
            hub = hub_for(ref.hub, environ)
            path = cached_file(ref, hub)
            if path is None and pull:
                with reporter() as progress:
                    pulled = pull_reference(hub, ref, progress)
                record(Manifest(settings.data_dir), pulled, [], None)
                path = pulled.paths[0]
            if path is None:
                raise ConfigError(
                    f"{ref} is not in the {ref.hub} cache ({hub.cache_dir}): run `thinkserve pull {ref}` "
                    "first, or `thinkserve serve --pull`"
                )
            if not isinstance(engine, LlamaCppSettings):
                raise ConfigError(f"engine {name!r}: only llama.cpp engines take hub references")
            engine = replace(engine, model=str(path))
        engines[name] = engine
    return replace(settings, engines=engines)


def with_pulled(settings: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    """Serve each pulled name with its own file, where nothing more explicit maps it."""
    engines = dict(settings.engines)
    models = dict(settings.models)
    base = settings.engines.get("default")
    by_file: dict[str, str] = {}
    for name, entry in Manifest(settings.data_dir).served().items():
        spec = models.get(name)
        if spec is None or spec.engine != "default":
            continue
        ref = Reference.parse(entry.reference)
        path = cached_file(ref, hub_for(ref.hub, environ))
        if path is None:
            log.warning(
                "%s was pulled for %s but is no longer in the cache; it stays on the default", ref, name
            )
            continue
        key = by_file.get(str(path))
        if key is None:
            key = by_file[str(path)] = f"pulled-{name}"
            if isinstance(base, LlamaCppSettings):
                engines[key] = replace(base, name=key, model=str(path))
            else:
                engines[key] = LlamaCppSettings(key, model=str(path))
        models[name] = replace(spec, engine=key)
        log.info("%s is served by %s (%s)", name, path, ref)
    return replace(settings, engines=engines, models=models)
