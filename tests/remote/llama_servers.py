"""Real llama.cpp servers (``llama-server``, built by ``make install-llama-server`` from the
llama.cpp thinkserve runs) on the tiny model, as processes that a test can kill.

The binary is found at ``$THINKSERVE_LLAMA_SERVER``, else ``.venv/bin/llama-server`` (this
checkout's, then the running interpreter's), else on ``PATH``; without one the tests skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import TINY_MODEL, free_port

ROOT = Path(__file__).parent.parent.parent
N_CTX = 4096
"""Context per slot; the server gets ``N_CTX * parallel`` in all."""


def llama_server_binary() -> Path:
    """The ``llama-server`` to run, or a skip saying how to build one."""
    named = os.environ.get("THINKSERVE_LLAMA_SERVER")
    candidates = [Path(named)] if named else []
    candidates += [ROOT / ".venv" / "bin" / "llama-server", Path(sys.executable).parent / "llama-server"]
    found = shutil.which("llama-server")
    candidates += [Path(found)] if found else []
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.skip("llama-server is not installed: make install-llama-server (or THINKSERVE_LLAMA_SERVER=PATH)")


@dataclass
class LlamaServer:
    """One ``llama-server`` process on a free port; its log goes to ``log``."""

    binary: Path
    port: int
    parallel: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LlamaServer:
        command = [str(self.binary), "--model", str(TINY_MODEL), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--ctx-size", str(N_CTX * self.parallel)]
        command += ["--parallel", str(self.parallel), "--threads", "1", "--metrics", "--no-webui"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while True:
            try:
                # 503 while the model loads, 200 once it serves.
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited: {self.log.read_text(errors='replace')[-3000:]}")
            assert time.monotonic() < deadline, "llama-server did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGCONT)  # a stopped process would not act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    @contextmanager
    def throttled(self, on: float = 0.005, off: float = 0.195) -> Iterator[None]:
        """Let the server run ``on`` seconds in every ``on + off`` (SIGCONT, then SIGSTOP): the
        tiny model's replies take a few seconds instead of a few milliseconds, so that a test
        can kill the server in the middle of one."""
        done = threading.Event()

        def cycle() -> None:
            while not done.is_set():
                self._signal(signal.SIGCONT)
                time.sleep(on)
                self._signal(signal.SIGSTOP)
                done.wait(off)
            self._signal(signal.SIGCONT)

        thread = threading.Thread(target=cycle, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _signal(self, number: int) -> None:
        # Under the lock that ``kill`` holds until it has reaped the process: never a signal to
        # a process that took over its id.
        with self._lock:
            if self.process is not None and self.process.returncode is None:
                os.kill(self.process.pid, number)

    def metric(self, name: str) -> float:
        """One of the server's own counters (``--metrics``): ``prompt_tokens_cached_total`` ..."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        found = re.search(rf"^llamacpp:{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert found is not None, f"llama-server reports no {name}"
        return float(found.group(1))


@contextmanager
def llama_servers(log_dir: Path, parallel: Sequence[int]) -> Iterator[list[LlamaServer]]:
    """One ``llama-server`` per entry of ``parallel`` (its slot count); stopped at the end."""
    binary = llama_server_binary()
    if not TINY_MODEL.is_file():
        pytest.skip(f"{TINY_MODEL} is missing")
    started: list[LlamaServer] = []
    try:
        for i, slots in enumerate(parallel):
            server = LlamaServer(binary, free_port(), slots, log_dir / f"llama-server-{i}.log")
            started.append(server.start())
        yield started
    finally:
        for server in started:
            server.stop()
