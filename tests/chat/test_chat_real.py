"""``thinkserve chat`` as a person and a script use it, against a real server on the tiny model:
typed into tmux (reasoning dimmed, then the answer; ``/no_think``), piped, over the native API,
and with the embedded server it starts itself."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY, TINY_MODEL, LiveServer, app_with, serve, stop

pytestmark = pytest.mark.slow

QUESTION = "What is 12 plus 7?"
USAGE = re.compile(r"^(\S+) · prompt (\d+) \(cached (\d+)\) · output (\d+) \(reasoning (\d+)\)", re.M)


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from thinkserve.engine.llamacpp.engine import LlamaCppEngine

    eng = LlamaCppEngine(str(TINY_MODEL), n_ctx=4096, n_seq=2)
    eng.start()
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="module")
def live(engine: Any) -> Iterator[LiveServer]:
    server, running = serve(app_with(engine))
    try:
        yield server
    finally:
        stop(running)


def chat_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "DASHSCOPE_API_KEY")}
    return {**env, "THINKSERVE_HOME": str(home), "DASHSCOPE_API_KEY": API_KEY}


def chat(
    home: Path, *flags: str, question: str = QUESTION, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thinkserve", "chat", *flags],
        input=question,
        capture_output=True,
        text=True,
        env=chat_env(home),
        timeout=timeout,
    )


def usage_of(text: str) -> tuple[str, int, int]:
    """(model, output tokens, reasoning tokens) of the last usage line in ``text``."""
    found = USAGE.findall(text)
    assert found, text
    model, _, _, output, reasoning = found[-1]
    return model, int(output), int(reasoning)


def test_pipe_prints_the_answer_alone_on_stdout(live: LiveServer, tmp_path: Path) -> None:
    done = chat(tmp_path, "--base-url", live.openai_base, "--model", "qwen3-8b", "--think", "--budget", "5")
    assert done.returncode == 0, done.stderr
    answer = done.stdout.strip()
    assert answer and "·" not in answer and "<think>" not in answer
    model, output, reasoning = usage_of(done.stderr)
    # The budget reached the server: the tiny model's reasoning is longer than 5 tokens unbounded.
    assert model == "qwen3-8b" and 0 < reasoning <= 5 < output
    # The reasoning went to stderr, before the usage line.
    assert done.stderr.split("qwen3-8b ·")[0].strip()


def test_pipe_over_the_native_api(live: LiveServer, tmp_path: Path) -> None:
    done = chat(
        tmp_path, "--dashscope", "--base-url", live.dashscope_base, "--model", "qwen3-8b", "--no-think"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert usage_of(done.stderr)[2] == 0
    refused = chat(
        tmp_path, "--dashscope", "--base-url", live.dashscope_base, "--model", "qwq-32b", "--no-think"
    )
    assert refused.returncode == 1 and refused.stdout == ""
    assert "HTTP 400 InvalidParameter: The value of the enable_thinking parameter is restricted to True." in (
        refused.stderr
    )


def test_embedded_server_with_a_model_file(tmp_path: Path) -> None:
    """No --base-url and a GGUF for --model: the chat starts thinkserve itself (keys, metering and
    all) in its own process, answers, and stops it; its cost is the one the server billed."""
    config = tmp_path / "thinkserve.toml"
    config.write_text(
        '[prices."qwen-plus"]\ninput = 0.8\ncached_input = 0.16\noutput = 2\nthinking_output = 8\n'
    )
    done = chat(tmp_path, "--model", str(TINY_MODEL), "--think", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    model, output, reasoning = usage_of(done.stderr)
    assert model == "qwen-plus" and 0 < reasoning < output
    cost = re.findall(r"· cost ([0-9.]+)$", done.stderr, re.M)
    assert cost, done.stderr
    # The embedded server metered the call like `serve` does, into the data folder.
    report = subprocess.run(
        [sys.executable, "-m", "thinkserve", "usage", "--since", "1h", "--json"],
        capture_output=True,
        text=True,
        env=chat_env(tmp_path),
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    rows = [json.loads(line) for line in report.stdout.splitlines()]
    assert [(r["model"], r["calls"], r["output_tokens"], r["reasoning_tokens"]) for r in rows] == [
        ("qwen-plus", 1, output, reasoning)
    ]
    assert Decimal(rows[0]["cost"]) == Decimal(cost[-1]) > 0


# -- tmux ------------------------------------------------------------------------------------------

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def segments(screen: str) -> list[tuple[bool, str]]:
    """``screen`` (``capture-pane -e`` output) as runs of text, each with whether it is drawn dim."""
    runs: list[tuple[bool, str]] = []
    is_dim = False
    pos = 0
    for m in SGR.finditer(screen + "\x1b[0m"):
        if text := screen[pos : m.start()]:
            runs.append((is_dim, text))
        pos = m.end()
        for param in (m.group(1) or "0").split(";"):
            if param in ("", "0", "22"):
                is_dim = False
            elif param == "2":
                is_dim = True
    return runs


def dim_and_plain(screen: str) -> tuple[str, str]:
    """The text drawn dim, and the rest; raises when some plain text comes before the dim text."""
    runs = [(d, t) for d, t in segments(screen) if t.strip()]
    dim = "".join(t for d, t in runs if d)
    plain = "".join(t for d, t in runs if not d)
    if dim:
        first_plain = next((i for i, (d, _) in enumerate(runs) if not d), len(runs))
        last_dim = max(i for i, (d, _) in enumerate(runs) if d)
        assert last_dim < first_plain, f"the reasoning is not all before the answer: {runs}"
    return dim, plain


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    def screen(self) -> str:
        return self("capture-pane", "-t", "chat", "-p", "-e", "-J", "-S", "-200")

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            plain = SGR.sub("", screen)
            if len(re.findall(pattern, plain, re.M)) >= count:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} x{count} on the screen:\n{plain}")
            time.sleep(0.2)

    def type(self, line: str) -> None:
        """Type ``line`` at the prompt (waiting for it: keys typed earlier would echo twice)."""
        self.wait_for(r"^>\s*$")
        self("send-keys", "-t", "chat", "-l", line)
        self("send-keys", "-t", "chat", "Enter")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (Debian: apt-get install -y tmux); the terminal test needs it")
    t = Tmux(f"thinkserve-chat-{os.getpid()}-{tmp_path.name}")
    try:
        yield t
    finally:
        subprocess.run(["tmux", "-L", t.socket, "kill-server"], capture_output=True, timeout=30)


def test_typed_chat_dims_the_reasoning_then_no_think_turns_it_off(
    live: LiveServer, tmux: Tmux, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "thinkserve",
        "chat",
        "--base-url",
        live.openai_base,
        "--model",
        "qwen3-8b",
    ]
    env = chat_env(tmp_path)
    exports = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("THINKSERVE_HOME", "DASHSCOPE_API_KEY", "PATH"))
    # The pane stays after the chat ends, with its status, so a crash shows in the failure.
    script = f"env -u NO_COLOR {exports} {shlex.join(command)}; echo chat-exited-$?; sleep 600"
    tmux("new-session", "-d", "-s", "chat", "-x", "200", "-y", "60", script)
    tmux.wait_for(r"thinkserve chat · qwen3-8b")

    # qwen3-8b thinks by default: the reasoning streams dimmed, then the answer plainly.
    tmux.type(QUESTION)
    screen = tmux.wait_for(r"^qwen3-8b · prompt")
    turn = screen[screen.rindex(QUESTION) + len(QUESTION) :]
    reply = turn[: turn.index("qwen3-8b · prompt")]
    dim, plain = dim_and_plain(reply)
    assert dim.strip(), f"no dimmed reasoning in {reply!r}"
    assert plain.strip(), f"no answer in {reply!r}"
    assert usage_of(SGR.sub("", turn))[2] > 0

    tmux.type("/no_think")
    tmux.wait_for(r"^thinking off")
    tmux.type("What is 3 plus 4?")
    screen = tmux.wait_for(r"^qwen3-8b · prompt", count=2)
    second = screen[screen.index("/no_think") :]
    second = second[: second.rindex("qwen3-8b · prompt")]
    answer_part = second[second.rindex("What is 3 plus 4?") + len("What is 3 plus 4?") :]
    dim, plain = dim_and_plain(answer_part)
    assert dim.strip() == "", f"reasoning shown after /no_think: {dim!r}"
    assert plain.strip()
    assert usage_of(SGR.sub("", screen))[2] == 0

    tmux.type("/usage")
    tmux.wait_for(r"^2 call\(s\): prompt \d+")
    tmux.type("/exit")
    tmux.wait_for(r"chat-exited-0")
