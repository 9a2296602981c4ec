"""The llama-cpp-python wheel build with a progress bar: ``wheel_progress.py LOG -- CMD...``.

``pip wheel -v`` passes the build's own output through; with Ninja each compile step starts with
``[12/345]`` (with Make, ``[ 34%]``). This reads those lines, draws a rich bar over the steps (or,
off a terminal, prints a line at every tenth), and keeps the whole output in LOG. On failure it
prints the log's last lines and exits with the command's status. It changes nothing about the build:
the command, its flags and its environment are run as given.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

NINJA = re.compile(r"^\[(\d+)/(\d+)\]")
MAKE = re.compile(r"^\[\s*(\d+)%\]")
TARGET = re.compile(r"CMakeFiles/([\w.+-]+)\.dir")
TAIL = 60


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    log_path, command = Path(argv[0]), argv[2:]
    console = Console(stderr=True)
    console.print(
        "[bold]Compiling llama-cpp-python with every CPU variant of llama.cpp.[/] This happens once and "
        "takes about 10-15 minutes on 2 cores (the wheel is then kept in the cache below).\n"
        f"Full output: {log_path}",
        highlight=False,
    )
    tail: deque[str] = deque(maxlen=TAIL)
    started = time.monotonic()
    with (
        log_path.open("w", encoding="utf-8") as log,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[target]}"),
            console=console,
            disable=not console.is_terminal,
        ) as progress,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
    ):
        task = progress.add_task("compiling llama.cpp", total=None, target="configuring")
        shown = -1
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line)
            done, total = _step(line)
            if total is None:
                continue
            target = TARGET.search(line)
            progress.update(task, completed=done, total=total, target=target.group(1) if target else "")
            tenth = 10 * done // total
            if not console.is_terminal and tenth > shown:
                shown = tenth
                console.print(
                    f"compiling llama.cpp: {done}/{total} steps, {time.monotonic() - started:.0f} s"
                )
        code = proc.wait()
    if code != 0:
        console.print(f"[bold red]the build failed ({code}); the last lines of {log_path}:[/]")
        console.print("".join(tail), markup=False, highlight=False)
    else:
        console.print(f"compiled in {time.monotonic() - started:.0f} s")
    return code


def _step(line: str) -> tuple[int, int | None]:
    """``[12/345] …`` -> ``(12, 345)``; ``[ 34%] …`` -> ``(34, 100)``; anything else -> ``(0, None)``."""
    if m := NINJA.match(line):
        return int(m.group(1)), int(m.group(2))
    if m := MAKE.match(line):
        return int(m.group(1)), 100
    return 0, None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
