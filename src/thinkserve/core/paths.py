"""Where thinkserve keeps its files by default (imports nothing from thinkserve)."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """``$THINKSERVE_HOME``, else ``$XDG_CACHE_HOME/thinkserve``, else ``~/.cache/thinkserve``."""
    if home := os.environ.get("THINKSERVE_HOME"):
        return Path(home)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "thinkserve"
