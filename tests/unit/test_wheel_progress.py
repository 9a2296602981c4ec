"""scripts/wheel_progress.py: the compile's steps become progress, the output a log, and the
command's exit status is kept (Make relies on it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "wheel_progress.py"
BUILD = 'echo configuring; for i in 1 2 3 4; do echo "[$i/4] cc CMakeFiles/ggml-cpu-haswell.dir/x.c.o"; done'


def run(tmp_path: Path, shell: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "build.log"), "--", "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_steps_are_reported_and_the_output_logged(tmp_path: Path) -> None:
    done = run(tmp_path, BUILD)
    assert done.returncode == 0, done.stderr
    assert "takes about 10-15 minutes" in done.stderr
    # Off a terminal: a line per tenth of the steps instead of a bar.
    assert "compiling llama.cpp: 4/4 steps" in done.stderr
    assert (tmp_path / "build.log").read_text().splitlines()[0] == "configuring"
    assert done.stdout == ""


def test_a_failed_build_keeps_its_status_and_shows_its_last_lines(tmp_path: Path) -> None:
    done = run(tmp_path, BUILD + "; echo 'error: no compiler'; exit 3")
    assert done.returncode == 3
    assert "the build failed (3)" in done.stderr and "error: no compiler" in done.stderr
