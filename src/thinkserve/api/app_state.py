"""Everything a request handler needs, built once by the app factory (imports config, service,
platform)."""

from __future__ import annotations

from dataclasses import dataclass

from thinkserve.config import Settings
from thinkserve.platform.port import Gate
from thinkserve.service.flow import RequestFlow


@dataclass(slots=True)
class AppState:
    settings: Settings
    flow: RequestFlow
    gate: Gate
    created: int
    model_files: dict[str, str]
    """Engine name -> the model file it serves (shown in /models)."""
