"""Server settings: built-in catalogue + optional TOML file + environment + CLI flags.

A config file looks like::

    [server]
    host = "127.0.0.1"
    port = 8000
    api_keys = ["sk-local-1"]

    [engines.default]            # the engine every catalogue name uses unless told otherwise
    model = "/models/Qwen3-8B-Q4_K_M.gguf"
    n_ctx = 16384
    n_seq = 8

    [engines.small]
    model = "/models/Qwen3-0.6B-Q8_0.gguf"

    [models."qwen3-0.6b"]        # override a catalogue entry ...
    engine = "small"

    [models."my-reasoner"]       # ... or add a name
    engine = "small"
    mode = "thinking_only"
    non_stream = true
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from thinkserve.catalogue.spec import ModelSpec, load_catalogue, spec_from_table
from thinkserve.core.errors import ConfigError
from thinkserve.core.paths import default_data_dir
from thinkserve.engine.llamacpp.settings import LlamaCppSettings
from thinkserve.engine.registry import EngineSettings, default_engine, settings_from_table
from thinkserve.engine.remote.settings import RemoteSettings, parse_upstreams
from thinkserve.engine.vllm.settings import VllmSettings
from thinkserve.platform.billing import Price, PriceError, parse_prices
from thinkserve.platform.columns import NAME_LENGTH
from thinkserve.platform.limits import FAILURE_MODES, FailureMode, Limits, LimitsError, parse_limits
from thinkserve.platform.settings import PlatformSettings
from thinkserve.search.settings import SearchSettings, parse_search


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()
    """The keys configured (admin keys), and the one ``serve`` made on a first run (``first_key``)."""
    first_key: str | None = None
    """Which of ``api_keys`` ``serve`` made: a normal key, not an admin key (see cli._ensure_key)."""
    data_dir: Path = field(default_factory=lambda: default_data_dir())
    max_body_bytes: int = 8 * 1024 * 1024
    drain_timeout_s: float = 30.0
    """On SIGTERM, how long requests in flight may finish; then they are cancelled and their usage
    recorded as ``cancelled`` (``[server] drain_timeout``, THINKSERVE_DRAIN_TIMEOUT)."""
    engines: dict[str, EngineSettings] = field(default_factory=lambda: {"default": default_engine()})
    """``[engines.NAME]``: each in its kind's settings type (see engine.registry)."""
    models: dict[str, ModelSpec] = field(default_factory=load_catalogue)
    database_url: str | None = None
    """Platform store; None: SQLite in ``data_dir`` (``[server] database_url``, THINKSERVE_DATABASE_URL)."""
    database_connect_timeout_s: float = 2.0
    """PostgreSQL connect timeout (``[server] database_connect_timeout``,
    THINKSERVE_DATABASE_CONNECT_TIMEOUT)."""
    database_command_timeout_s: float = 10.0
    """PostgreSQL query timeout (``[server] database_timeout``, THINKSERVE_DATABASE_TIMEOUT)."""
    redis_url: str | None = None
    """Shared rate limits across processes (``[server] redis_url``, THINKSERVE_REDIS_URL)."""
    redis_timeout_s: float = 0.5
    """Redis connect and socket timeout (``[server] redis_timeout``, THINKSERVE_REDIS_TIMEOUT)."""
    redis_failure: FailureMode = "local"
    """Rate limits while Redis is down: "local" or "closed" (``[server] redis_failure``,
    THINKSERVE_REDIS_FAILURE; see platform.throttle)."""
    limits: dict[str, Limits] = field(default_factory=dict)
    """``[limits."MODEL"]``: per key and model; ``"*"`` for the rest (see platform.limits)."""
    prices: dict[str, Price] = field(default_factory=dict)
    """``[prices."MODEL"]``, per million tokens (see platform.billing)."""
    search: SearchSettings = field(default_factory=SearchSettings)
    """``[search]``: the web search provider, if any (see search.settings; ``serve --search-docs``)."""

    @property
    def platform(self) -> PlatformSettings:
        """What the platform reads of these settings (it never imports this module)."""
        return PlatformSettings(
            data_dir=self.data_dir,
            bootstrap_keys=tuple(k for k in self.api_keys if k != self.first_key),
            first_key=self.first_key,
            database_url=self.database_url,
            database_connect_timeout_s=self.database_connect_timeout_s,
            database_command_timeout_s=self.database_command_timeout_s,
            redis_url=self.redis_url,
            redis_timeout_s=self.redis_timeout_s,
            redis_failure=self.redis_failure,
            limits=self.limits,
            prices=self.prices,
        )


def load_settings(
    config_file: Path | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    model: str | None = None,
    vllm: str | None = None,
    upstreams: Sequence[str] = (),
    tokenizer: str | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge the sources; later ones win: catalogue, file, environment, flags."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if config_file is not None:
        data = tomllib.loads(config_file.read_text("utf-8"))
    server = data.get("server", {})
    engines = {"default": default_engine()}
    for name, table in data.get("engines", {}).items():
        engines[name] = settings_from_table(name, table)
    models = load_catalogue()
    for name, table in data.get("models", {}).items():
        models[name] = spec_from_table(name, table, models.get(name))
    for spec in models.values():
        # The name is what usage records store (usage.model): it must fit there.
        if len(spec.name) > NAME_LENGTH or not spec.name.isprintable():
            raise ConfigError(
                f"model name {spec.name[:40]!r}... must be at most {NAME_LENGTH} printable characters"
            )
        if spec.engine not in engines:
            raise ConfigError(f"model {spec.name!r} uses unknown engine {spec.engine!r}")
    if model is not None:
        # --model: every served name uses that GGUF (on llama.cpp, whatever the file said).
        default = engines["default"]
        llama = default if isinstance(default, LlamaCppSettings) else LlamaCppSettings("default")
        engines = {"default": replace(llama, model=model)}
        models = {name: replace(spec, engine="default") for name, spec in models.items()}
    if vllm is not None and upstreams:
        raise ConfigError("--vllm and --upstream each serve every model name: give one of them")
    if vllm is not None:
        # --vllm: every served name uses that model directory on vLLM (the file's vLLM keys kept).
        default = engines["default"]
        on_vllm = default if isinstance(default, VllmSettings) else VllmSettings("default")
        engines = {"default": replace(on_vllm, model=vllm)}
        models = {name: replace(spec, engine="default") for name, spec in models.items()}
    if upstreams:
        engines, models = _upstreams(engines, models, upstreams, tokenizer)
    keys = tuple(server.get("api_keys", ()))
    if env_keys := env.get("THINKSERVE_API_KEYS"):
        keys = tuple(k.strip() for k in env_keys.split(",") if k.strip())
    data_dir = Path(server["data_dir"]) if "data_dir" in server else default_data_dir()
    return Settings(
        host=host or server.get("host", "127.0.0.1"),
        port=port if port is not None else int(server.get("port", 8000)),
        api_keys=keys,
        data_dir=data_dir,
        max_body_bytes=int(server.get("max_body_bytes", 8 * 1024 * 1024)),
        drain_timeout_s=_seconds(env, server, "drain_timeout", 30.0),
        engines=engines,
        models=models,
        database_url=env.get("THINKSERVE_DATABASE_URL") or server.get("database_url"),
        redis_url=env.get("THINKSERVE_REDIS_URL") or server.get("redis_url"),
        database_connect_timeout_s=_seconds(env, server, "database_connect_timeout", 2.0),
        database_command_timeout_s=_seconds(env, server, "database_timeout", 10.0),
        **_redis_failure(env, server),
        **_platform_tables(data),
        search=parse_search(data.get("search", {})),
    )


def _upstreams(
    engines: dict[str, EngineSettings],
    models: dict[str, ModelSpec],
    urls: Sequence[str],
    tokenizer: str | None,
) -> tuple[dict[str, EngineSettings], dict[str, ModelSpec]]:
    """``--upstream URL ...``: every served name goes to that pool of engine servers (the config's
    remote ``default`` engine keeps its other keys)."""
    default = engines["default"]
    remote = default if isinstance(default, RemoteSettings) else RemoteSettings("default")
    remote = replace(
        remote, upstreams=parse_upstreams("default", list(urls)), tokenizer=tokenizer or remote.tokenizer
    )
    if remote.tokenizer is None:
        raise ConfigError("--upstream needs the model's tokenizer: --tokenizer FILE (GGUF or tokenizer.json)")
    return {"default": remote}, {name: replace(spec, engine="default") for name, spec in models.items()}


def _seconds(env: Mapping[str, str], server: dict[str, Any], name: str, default: float) -> float:
    """``[server] NAME`` (or ``THINKSERVE_NAME``): a number of seconds in (0, 600]."""
    raw = env.get(f"THINKSERVE_{name.upper()}") or server.get(name, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not 0 < value <= 600:
        raise ConfigError(f"{name} must be in (0, 600] seconds, not {raw!r}")
    return value


def _redis_failure(env: Mapping[str, str], server: dict[str, Any]) -> dict[str, Any]:
    """``redis_timeout`` (seconds, > 0) and ``redis_failure`` ("local" or "closed")."""
    raw_timeout = env.get("THINKSERVE_REDIS_TIMEOUT") or server.get("redis_timeout", 0.5)
    try:
        if isinstance(raw_timeout, bool):
            raise ValueError
        timeout = float(raw_timeout)
    except (TypeError, ValueError):
        raise ConfigError(f"redis_timeout must be a number of seconds, not {raw_timeout!r}") from None
    if not 0 < timeout <= 60:
        raise ConfigError(f"redis_timeout must be in (0, 60] seconds, not {raw_timeout!r}")
    mode = env.get("THINKSERVE_REDIS_FAILURE") or server.get("redis_failure", "local")
    if mode not in FAILURE_MODES:
        raise ConfigError(f"redis_failure must be one of {', '.join(FAILURE_MODES)}, not {mode!r}")
    return {"redis_timeout_s": timeout, "redis_failure": mode}


def _platform_tables(data: dict[str, Any]) -> dict[str, Any]:
    try:
        limits, prices = parse_limits(data.get("limits", {})), parse_prices(data.get("prices", {}))
        return {"limits": limits, "prices": prices}
    except (LimitsError, PriceError) as exc:
        raise ConfigError(str(exc)) from exc
