"""The platform's slice of the server settings (imports platform.limits, platform.billing).

``config.Settings.platform`` builds it from ``[server]``, ``[limits]`` and ``[prices]`` of the
config file and the environment; the platform never reads ``config`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from thinkserve.platform.billing import Price
from thinkserve.platform.limits import FailureMode, Limits


@dataclass(frozen=True, slots=True)
class PlatformSettings:
    data_dir: Path
    """Holds the SQLite file (when ``database_url`` is None) and the usage journal."""
    bootstrap_keys: tuple[str, ...] = ()
    """``THINKSERVE_API_KEYS`` / ``[server] api_keys``: admin keys with no limits of their own."""
    first_key: str | None = None
    """The key ``thinkserve serve`` made on a first run: a normal stored key named ``first``, added at
    start unless a key with that secret exists (a revoked one stays revoked)."""
    database_url: str | None = None
    """None: SQLite in ``data_dir`` (see ``platform.database``)."""
    database_connect_timeout_s: float = 2.0
    """PostgreSQL connect timeout (``[server] database_connect_timeout``): a database that went away
    answers 503 this quickly."""
    database_command_timeout_s: float = 10.0
    """PostgreSQL query timeout, and the wait for a pooled connection (``[server] database_timeout``)."""
    redis_url: str | None = None
    """Shares rate limits across server processes; None: limits per process."""
    redis_timeout_s: float = 0.5
    """Connect and socket timeout of each Redis call (``[server] redis_timeout``)."""
    redis_failure: FailureMode = "local"
    """Rate windows while Redis is unreachable: ``local`` (per process) or ``closed`` (503)."""
    limits: Mapping[str, Limits] = field(default_factory=dict)
    """``[limits."MODEL"]``: per key and model; ``"*"`` for the rest (see ``platform.limits``)."""
    prices: Mapping[str, Price] = field(default_factory=dict)
    """``[prices."MODEL"]``, per million tokens (see ``platform.billing``)."""

    @property
    def journal_dir(self) -> Path:
        return self.data_dir / "journal"
