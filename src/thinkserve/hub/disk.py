"""Free disk space, checked before the first byte of a pull (the probe is a parameter for tests)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from thinkserve.hub.remote import HubError

FreeSpace = Callable[[Path], int]
# Room left over after a pull: a disk filled to the last byte breaks everything else on it.
MARGIN = 64 * 1024 * 1024


class NotEnoughSpace(HubError):
    pass


def free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def ensure_room(needed: int, where: Path, free: FreeSpace = free_bytes) -> None:
    """Raise NotEnoughSpace unless ``needed`` bytes (+ a margin) fit at ``where``."""
    available = free(where)
    if needed + MARGIN > available:
        raise NotEnoughSpace(
            f"not enough disk space in {where}: the download needs {human_size(needed)} "
            f"(+{human_size(MARGIN)} to spare), {human_size(available)} is free. Free some space, or point "
            "the hub's cache elsewhere (HF_HUB_CACHE / HF_HOME, or MODELSCOPE_CACHE)."
        )


def human_size(n: int) -> str:
    """``1536`` -> ``"1.5 KB"`` (decimal units, as the hubs show sizes)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
