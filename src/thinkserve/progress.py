"""Progress bars for a person waiting at a terminal (imports nothing from thinkserve).

They go to stderr, so that stdout stays the program's output (``thinkserve chat`` in a pipe), and
only when stderr is a terminal: logs and tests see nothing. The server still logs what it does.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def bytes_bar(*, show: bool = True) -> Progress:
    """A bar over a known number of bytes, its tasks named as they are added::

    assembling the default model ━━━━━╸━━━━━━━ 0.4/1.1 GB 180.2 MB/s 0:00:04
    """
    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (show and console.is_terminal),
    )


@contextlib.contextmanager
def waiting(description: str) -> Iterator[None]:
    """A pulsing bar with the time so far, for a wait of unknown length (loading a model); it is
    filled when the block ends without an error: ``⠋ loading model.gguf (1.1 GB) ━━━━━━ 0:00:03``."""
    console = Console(stderr=True)
    stderr = sys.stderr
    with (
        Progress(
            SpinnerColumn(finished_text="✓"),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        ) as progress,
        _logs_above(stderr, live=not progress.disable),
    ):
        task = progress.add_task(description, total=None)
        yield
        progress.update(task, total=1, completed=1)


@contextlib.contextmanager
def _logs_above(stderr: TextIO, *, live: bool) -> Iterator[None]:
    """While a bar is live, log lines for stderr go through rich's stand-in for it (``sys.stderr``
    meanwhile), which prints them above the bar instead of through it."""
    if not live or sys.stderr is stderr:
        yield
        return
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    swapped: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and handler.stream is stderr:
                swapped.append((handler, handler.stream))
                handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)


def size(n: int) -> str:
    """``1117320768`` -> ``"1.1 GB"``, ``16_600_000`` -> ``"16.6 MB"``."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def file_label(path: Path) -> str:
    """``model.gguf (1.1 GB)``, or just the name of what is not a file (the fake engine's)."""
    return f"{path.name} ({size(path.stat().st_size)})" if path.is_file() else path.name
