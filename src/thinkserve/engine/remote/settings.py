"""Settings of the remote engine: a pool of engine servers driven at the token level (pure).

An ``[engines.NAME]`` table of this kind reads::

    [engines.default]
    kind = "remote"
    tokenizer = "/models/Qwen3-8B/"          # the model's tokenizer, here: an HF directory
                                             # (tokenizer.json + tokenizer_config.json), a
                                             # tokenizer.json, or a GGUF file (vocabulary only)
    upstreams = [
        { url = "http://10.0.0.5:8000", weight = 2 },              # protocol detected
        { url = "http://10.0.0.6:8080", protocol = "llamacpp" },   # or "vllm"
        "http://10.0.0.7:8000",                                    # weight 1, detected
    ]
    n_ctx = 32768                # optional: default, the smallest context the upstreams report
    served_model = "Qwen/Qwen3-8B"   # optional: the model name sent to vLLM (default: its first)
    connect_timeout = 2.0        # seconds to open a connection
    read_timeout = 120.0         # seconds between two chunks of a stream (prefill included)
    max_connections = 256        # per upstream (kept alive and reused)
    max_queue = 4096             # sequences in flight over the whole pool before 503
    health_interval = 2.0        # seconds between health probes of each upstream
    eject_after = 3              # consecutive failed requests that eject an upstream
    eject_for = 5.0              # seconds out on the first ejection (doubling, to 60)
    affinity_threshold = 0.5     # share of the prompt an upstream must hold to win it
    balance_abs = 32             # load gap (requests) from which affinity yields to load
    whole_max_tokens = 256       # a non-streaming request's completion of at most this many
                                 # tokens is asked for whole (one response, not a stream); 0: never

Connection refusals and failed health probes eject at once; other failures count towards
``eject_after``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from thinkserve.core.errors import ConfigError

WireName = Literal["vllm", "llamacpp"]
WIRES: tuple[WireName, ...] = ("vllm", "llamacpp")


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """One engine server: ``UpstreamSpec("http://10.0.0.5:8000", weight=2, protocol="vllm")``."""

    url: str
    weight: float = 1.0
    protocol: WireName | None = None
    """None: detected from the endpoints the server answers (``engine.remote.probe``)."""


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """A pool of engine servers and the tokenizer of the model they serve."""

    TOML_KEYS: ClassVar[Mapping[str, type | tuple[str, ...]]] = {
        "tokenizer": str,
        "upstreams": list,
        "n_ctx": int,
        "served_model": str,
        "connect_timeout": float,
        "read_timeout": float,
        "max_connections": int,
        "max_queue": int,
        "health_interval": float,
        "eject_after": int,
        "eject_for": float,
        "affinity_threshold": float,
        "balance_abs": int,
        "whole_max_tokens": int,
    }

    name: str
    kind: str = field(default="remote", init=False)
    own_process: bool = field(default=False, init=False)
    """Nothing to isolate: the model runs in the upstream servers."""
    tokenizer: str | None = None
    upstreams: tuple[UpstreamSpec, ...] = ()
    """A config gives a list of URLs or tables: ``__post_init__`` parses them."""
    n_ctx: int | None = None
    served_model: str | None = None
    connect_timeout: float = 2.0
    read_timeout: float = 120.0
    max_connections: int = 256
    max_queue: int = 4096
    health_interval: float = 2.0
    eject_after: int = 3
    eject_for: float = 5.0
    affinity_threshold: float = 0.5
    balance_abs: int = 32
    whole_max_tokens: int = 256
    """A completion for a caller that takes its tokens only at the end (``EngineRequest.whole``)
    and that asks for at most this many tokens is one response, not a stream: no event per token
    to write, send and read. The bound keeps it within ``read_timeout`` (nothing comes until it is
    done), and a cancel lets it finish so that every token it sampled is counted."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstreams", parse_upstreams(self.name, self.upstreams))
        positive = {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "max_connections": self.max_connections,
            "max_queue": self.max_queue,
            "health_interval": self.health_interval,
            "eject_after": self.eject_after,
            "eject_for": self.eject_for,
        }
        for key, value in positive.items():
            if value <= 0:
                raise ConfigError(f"engine {self.name!r}: {key} must be positive, not {value!r}")
        if self.n_ctx is not None and self.n_ctx < 1:
            raise ConfigError(f"engine {self.name!r}: n_ctx must be positive, not {self.n_ctx!r}")
        if not 0.0 <= self.affinity_threshold <= 1.0:
            raise ConfigError(f"engine {self.name!r}: affinity_threshold must be in [0, 1]")
        if self.balance_abs < 0:
            raise ConfigError(f"engine {self.name!r}: balance_abs must not be negative")
        if self.whole_max_tokens < 0:
            raise ConfigError(f"engine {self.name!r}: whole_max_tokens must not be negative")

    def check(self) -> None:
        """What a usable pool needs beyond well-formed keys (checked when the engine is built)."""
        if not self.upstreams:
            raise ConfigError(f"engine {self.name!r}: a remote engine needs at least one upstream")
        if self.tokenizer is None:
            raise ConfigError(
                f"engine {self.name!r}: a remote engine needs the model's tokenizer "
                "(tokenizer = a GGUF file, a tokenizer.json or an HF model directory; --tokenizer)"
            )


def parse_upstreams(engine: str, given: object) -> tuple[UpstreamSpec, ...]:
    """URLs, tables (``{url, weight, protocol}``) or ``UpstreamSpec``s; raises ``ConfigError``."""
    if not isinstance(given, list | tuple):
        raise ConfigError(f"engine {engine!r}: upstreams must be a list")
    return tuple(_upstream(engine, item) for item in given)


def _upstream(engine: str, item: object) -> UpstreamSpec:
    if isinstance(item, UpstreamSpec):
        return item
    table: Mapping[str, Any] = {"url": item} if isinstance(item, str) else _table(engine, item)
    unknown = set(table) - {"url", "weight", "protocol"}
    if unknown:
        raise ConfigError(f"engine {engine!r}: unknown upstream key {sorted(unknown)[0]!r}")
    url = table.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"engine {engine!r}: upstream url must be an http(s) URL, not {url!r}")
    weight = table.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise ConfigError(f"engine {engine!r}: upstream weight must be a positive number, not {weight!r}")
    protocol = table.get("protocol")
    if protocol is not None and protocol not in WIRES:
        raise ConfigError(f"engine {engine!r}: upstream protocol must be one of {', '.join(WIRES)}")
    return UpstreamSpec(url.rstrip("/"), float(weight), protocol)


def _table(engine: str, item: object) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise ConfigError(f"engine {engine!r}: an upstream is a URL or a table, not {item!r}")
    return item
