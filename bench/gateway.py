"""Gateway cost: requests/s and streamed chunks/s of thinkserve over an instant (fake) engine.

The server runs pinned to one core (``taskset -c 0``) with the scripted engine (no model), and
``wrk`` (Debian package ``wrk``) loads it from the other core. Reported side by side in one run:
non-streaming requests/s, streaming requests/s and chunks/s (every SSE ``data:`` line counts), and
the server's own CPU time per request and per chunk (steadier than the rates on a shared machine).

    python bench/gateway.py [--seconds 10] [--connections 32] [--reply-chars 200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

KEY = "sk-bench"


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not come up")


def wrk(url: str, body: dict[str, object], seconds: int, connections: int) -> float:
    """Requests per second, as wrk measures them."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
            f'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
        )
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", lua.name, url]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(lua.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def chunks_per_request(url: str, body: dict[str, object]) -> int:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    text = urllib.request.urlopen(req).read().decode()
    return sum(1 for line in text.splitlines() if line.startswith("data:"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux). Unlike wall-clock rates, it does not
    count time the hypervisor or other processes took from the server's core."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=18431)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "bench.toml"
        config.write_text(
            f'[server]\napi_keys = ["{KEY}"]\n[engines.default]\nkind = "fake"\nmax_queue = 100000\n'
        )
        cmd = [
            sys.executable,
            "-m",
            "thinkserve",
            "--log-level",
            "warning",
            "serve",
            "--config",
            str(config),
            "--port",
            str(args.port),
        ]
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", "0", *cmd]
        server = subprocess.Popen(cmd, env={**os.environ, "THINKSERVE_HOME": home})
        try:
            base = f"http://127.0.0.1:{args.port}"
            wait_up(f"{base}/health")
            url = f"{base}/compatible-mode/v1/chat/completions"
            messages = [{"role": "user", "content": "hello"}]
            plain = {"model": "qwen-plus", "messages": messages}
            streamed = {
                **plain,
                "stream": True,
                "enable_thinking": True,
                "stream_options": {"include_usage": True},
            }
            per_request = chunks_per_request(url, streamed)
            cpu0 = cpu_seconds(server.pid)
            rps = wrk(url, plain, args.seconds, args.connections)
            cpu1 = cpu_seconds(server.pid)
            srps = wrk(url, streamed, args.seconds, args.connections)
            cpu2 = cpu_seconds(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print("| measure | thinkserve (1 core, fake engine) |")
    print("|---|---|")
    print(f"| non-streaming requests/s | {rps:,.0f} |")
    print(f"| streaming requests/s ({per_request} chunks each) | {srps:,.0f} |")
    print(f"| streamed chunks/s | {srps * per_request:,.0f} |")
    # wrk's rate times its duration approximates the requests served while the CPU was counted.
    print(f"| server CPU per non-streaming request | {(cpu1 - cpu0) / (rps * args.seconds) * 1e6:,.0f} us |")
    per_chunk = (cpu2 - cpu1) / (srps * args.seconds * per_request) * 1e6
    print(f"| server CPU per streamed chunk | {per_chunk:,.1f} us |")


if __name__ == "__main__":
    main()
