"""The gateway's own cost, like for like, in one run: LiteLLM's proxy and thinkserve, each pinned to
one core, each in front of an instant upstream, each upstream also measured alone as the floor, all
with the same load generator.

    .venv/bin/python bench/gateway.py [--duration 10] [--warmup 2] [--concurrency 1,8,32] \
        [--before SRC [--rounds 3]]

Targets, one at a time, in this order (only one gateway is up at a time: an idle one still uses CPU):

1. ``upstream-chat``: the instant upstream's OpenAI chat endpoint, alone (LiteLLM's floor);
2. ``litellm``: LiteLLM's proxy, default settings, in its own venv, routing to that endpoint;
3. ``upstream-tokens``: the instant upstream's vLLM token-level completions endpoint, alone, with
   the very prompt ids thinkserve sends (thinkserve's floor);
4. ``thinkserve``: the full platform (a stored key with RPM/TPM limits, model limits, metering
   journaled into SQLite) on ``/compatible-mode/v1/chat/completions``, routing to that endpoint
   with its remote engine (``kind = "remote"``) when this thinkserve has one (its ``serve --help``
   lists ``--upstream``), else on its in-process scripted engine (``kind = "fake"``). The report
   names the path it measured.
5. ``thinkserve-before`` (with ``--before SRC``): the same, from another source tree, so that a
   change is measured against the code before it in one run, on the same machine state. With
   ``--rounds N`` the thinkserve targets and their floor are up together and take their windows in
   turn, N each, each cell the median of its N: this VM's speed drifts over minutes, and targets
   measured one after the other would take the drift as their difference.

Both upstreams are one process (``bench/instant_upstream.py``) answering the same reply: N tokens
(``--chunks``, default 64) of one text, one token per streamed event. The load generator
(``bench/gateway_load.py``) and the upstream share the harness core (``--harness-cpu``, default 1);
the gateway runs alone on ``--gateway-cpu`` (default 0). The harness and LiteLLM get venvs of their
own under ``~/.cache/thinkserve/bench`` (made on first use, from PyPI).

Prints markdown tables (``--json FILE`` also keeps the raw rows): req/s and req/s per gateway core
(req/s divided by the gateway's CPU use in cores, read from /proc), p50/p99 and p50 added over the
floor, streamed chunks/s and chunks/s per gateway core, and the ratios to LiteLLM.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import gateway_report
import gateway_script

HERE = Path(__file__).resolve().parent
HARNESS_PACKAGES = ["aiohttp", "uvicorn", "uvloop", "httptools", "orjson"]
TS_KEY_NAME = "bench"
LITELLM_KEY = "sk-bench-litellm-master"
LITELLM_MODEL = "bench-model"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "thinkserve" / "bench"


def ensure_venv(path: Path, packages: list[str]) -> Path:
    """A venv at ``path`` holding ``packages`` (installed once; the list is kept in a marker)."""
    marker = path / ".installed"
    wanted = " ".join(packages)
    python = path / "bin" / "python"
    if marker.exists() and marker.read_text() == wanted and python.exists():
        return python
    print(f"installing {wanted} into {path} ...", file=sys.stderr)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    marker.write_text(wanted)
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinned(cpu: str | None, cmd: list[str]) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", cpu, *cmd]


def wait_ready(url: str, proc: subprocess.Popen[bytes], key: str | None = None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def running(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` (output to ``log``); stop exactly that process afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Bench:
    def __init__(self, args: argparse.Namespace, harness: Path, prompt_ids: list[int]) -> None:
        self.args = args
        self.harness = harness
        self.prompt_ids = prompt_ids
        self.rows: list[dict[str, object]] = []

    def measure(self, target: Target) -> None:
        """The matrix (modes x concurrency) against one target."""
        for stream in self.args.modes:
            for c in self.args.concurrency:
                self.rows.append(self.cell(target, stream, c))

    def interleaved(self, targets: list[Target]) -> None:
        """The matrix against several targets, their windows taken in turn (``--rounds`` of each,
        one target after the other), each cell reported as the median of its rounds: a machine
        whose speed drifts over minutes then moves every target alike."""
        for stream in self.args.modes:
            for c in self.args.concurrency:
                rounds: dict[str, list[dict[str, object]]] = {t.label: [] for t in targets}
                for _ in range(self.args.rounds):
                    for target in targets:
                        rounds[target.label].append(self.cell(target, stream, c))
                self.rows += [gateway_report.median_row(rows) for rows in rounds.values()]

    def cell(self, target: Target, stream: bool, c: int) -> dict[str, object]:
        """One window of load at concurrency ``c`` against ``target``."""
        args = self.args
        cmd = [
            str(self.harness),
            str(HERE / "gateway_load.py"),
            f"--url={target.url}",
            f"--api={target.api}",
            f"--model={target.model}",
            f"--key={target.key}",
            f"--prompt={args.prompt}",
            f"--prompt-ids={','.join(map(str, self.prompt_ids))}",
            f"--max-tokens={args.chunks + 16}",
            f"-c{c}",
            f"--duration={args.duration}",
            f"--warmup={args.warmup}",
            f"--label={target.label}",
            *(f"--watch={name}={pid}" for name, pid in target.watch.items()),
            *(["--stream"] if stream else []),
        ]
        out = subprocess.run(pinned(args.harness_cpu, cmd), capture_output=True, text=True, check=True)
        row: dict[str, object] = json.loads(out.stdout)
        print(gateway_report.one_line(row), file=sys.stderr)
        return row


@dataclass(frozen=True)
class Target:
    """Where one measured window sends its load."""

    label: str
    url: str
    api: str
    model: str
    key: str
    watch: dict[str, int]


def thinkserve_has_upstream() -> bool:
    """Whether this thinkserve's CLI serves remote engines (``serve --upstream URL``)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "thinkserve", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return "--upstream" in help_text


def thinkserve_config(home: Path, path: str, upstream: str, tokenizer: Path, answer: str) -> Path:
    """The full platform: keys from SQLite, limits on the key and on every model, usage journaled."""
    if path == "upstream":
        engine = (
            '[engines.default]\nkind = "remote"\n'
            f"tokenizer = {json.dumps(str(tokenizer))}\n"
            f'upstreams = [{{ url = "{upstream}", protocol = "vllm" }}]\n'
            "max_queue = 100000\n"
        )
    else:
        engine = f'[engines.default]\nkind = "fake"\nmax_queue = 100000\nanswer = {json.dumps(answer)}\n'
    config = home / "thinkserve.toml"
    config.write_text(engine + '\n[limits."*"]\nrpm = 100000000\ntpm = 100000000000\n')
    return config


def create_key(config: Path, env: dict[str, str]) -> str:
    cmd = [
        sys.executable,
        "-m",
        "thinkserve",
        "--log-level",
        "warning",
        "keys",
        "create",
        "--name",
        TS_KEY_NAME,
    ]
    cmd += ["--rpm", "100000000", "--tpm", "100000000000", "--config", str(config)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return out.strip().splitlines()[-1]


def litellm_config(work: Path, upstream: str) -> Path:
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {LITELLM_MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/instant\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-upstream\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    return config


@contextmanager
def thinkserve_target(
    args: argparse.Namespace,
    work: Path,
    label: str,
    src: str | None,
    path: str,
    upstream: str,
    script: gateway_script.Script,
    port: int,
    watch_up: dict[str, int],
) -> Iterator[Target]:
    """A thinkserve (from ``src``, or this tree's) on ``port``, with its key: up while in use."""
    home = work / label
    home.mkdir()
    tokenizer = Path(args.tokenizer).resolve()
    config = thinkserve_config(home, path, upstream, tokenizer, script.text)
    env = {**os.environ, "THINKSERVE_HOME": str(home)}
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve())  # that tree's sources win
    key = create_key(config, env)
    cmd = [sys.executable, "-m", "thinkserve", "--log-level", "warning", "serve"]
    cmd += ["--config", str(config), "--port", str(port)]
    with running(pinned(args.gateway_cpu, cmd), work / f"{label}.log", env) as gw:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/health", gw)
        yield Target(
            label, f"{base}/compatible-mode/v1/chat/completions", "chat", "qwen-plus", key,
            {**watch_up, "gw": gw.pid},
        )  # fmt: skip


def version_of(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def run(args: argparse.Namespace) -> int:
    cache = cache_dir()
    harness = ensure_venv(cache / "harness-venv", HARNESS_PACKAGES)
    litellm_python = ensure_venv(cache / "litellm-venv", [args.litellm_spec])
    path = args.path if args.path != "auto" else ("upstream" if thinkserve_has_upstream() else "fake")
    script = gateway_script.build(path, Path(args.tokenizer), args.prompt, args.chunks)
    work = Path(tempfile.mkdtemp(prefix="gatebench-"))
    bench = Bench(args, harness, script.prompt_ids)
    script_file = work / "script.json"
    script_file.write_text(json.dumps({"tokens": script.tokens}))
    up_port, ll_port, ts_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    meta = gateway_report.machine(args, path)
    meta["litellm"] = version_of(litellm_python, "litellm")
    meta["chunks"] = len(script.tokens) - 1
    meta["prompt_tokens"] = len(script.prompt_ids)
    up_cmd = [str(harness), str(HERE / "instant_upstream.py"), f"--port={up_port}", f"--script={script_file}"]
    try:
        with running(pinned(args.harness_cpu, up_cmd), work / "upstream.log") as up:
            wait_ready(f"{upstream}/health", up)
            watch_up = {"up": up.pid}
            if "litellm" in args.targets:
                chat = f"{upstream}/v1/chat/completions"
                bench.measure(Target("upstream-chat", chat, "chat", "instant", "none", watch_up))
                env = {
                    k: v
                    for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL")
                }
                env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no download of the cost map at start
                cmd = [
                    str(litellm_python.parent / "litellm"),
                    "--config",
                    str(litellm_config(work, upstream)),
                ]
                cmd += ["--host", "127.0.0.1", "--port", str(ll_port)]
                with running(pinned(args.gateway_cpu, cmd), work / "litellm.log", env) as gw:
                    base = f"http://127.0.0.1:{ll_port}/v1"
                    wait_ready(f"{base}/models", gw, LITELLM_KEY)
                    watch = {**watch_up, "gw": gw.pid}
                    url = f"{base}/chat/completions"
                    bench.measure(Target("litellm", url, "chat", LITELLM_MODEL, LITELLM_KEY, watch))
            if "thinkserve" in args.targets:
                tokens = f"{upstream}/v1/completions"
                floor = Target("upstream-tokens", tokens, "completions", "instant", "none", watch_up)

                def gateway(label: str, src: str | None, port: int) -> AbstractContextManager[Target]:
                    return thinkserve_target(args, work, label, src, path, upstream, script, port, watch_up)

                trees = [("thinkserve", None)] + ([("thinkserve-before", args.before)] if args.before else [])
                if args.rounds > 1:
                    # Every gateway up at once (an idle one costs little), their windows in turn.
                    with ExitStack() as stack:
                        ports = [ts_port] + [free_port() for _ in trees[1:]]
                        up = [
                            stack.enter_context(gateway(label, src, port))
                            for (label, src), port in zip(trees, ports, strict=True)
                        ]
                        bench.interleaved([floor, *up])
                else:
                    bench.measure(floor)
                    for label, src in trees:
                        with gateway(label, src, ts_port) as target:
                            bench.measure(target)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"benchmark failed: {exc}; logs in {work}", file=sys.stderr)
        if isinstance(exc, subprocess.CalledProcessError):
            print(exc.stderr, file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": bench.rows}, indent=1))
    print(gateway_report.markdown(meta, bench.rows))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each window")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--modes", default="nonstream,stream")
    parser.add_argument("--targets", default="litellm,thinkserve")
    parser.add_argument("--chunks", type=int, default=64, help="tokens in the reply (streamed events)")
    parser.add_argument("--prompt", default="Say hello.")
    parser.add_argument("--path", choices=("auto", "upstream", "fake"), default="auto")
    parser.add_argument("--tokenizer", default=str(HERE.parent / "tests/fixtures/tiny-qwen3.gguf"))
    parser.add_argument("--gateway-cpu", default="0")
    parser.add_argument("--harness-cpu", default="1")
    parser.add_argument("--no-pin", action="store_true", help="run everything unpinned")
    parser.add_argument("--litellm-spec", default="litellm[proxy]", help="e.g. 'litellm[proxy]==1.108.7'")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with N > 1, the thinkserve targets and their floor are all up at once and take N "
        "windows each in turn, each cell the median of its N (for comparing with --before)",
    )
    parser.add_argument("--json", default=None, help="also write the raw rows to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument(
        "--before",
        default=None,
        metavar="SRC",
        help="also measure thinkserve from this source folder (label thinkserve-before), in the same "
        "run: e.g. the src of `git archive OLD src | tar -x -C /tmp/old`",
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.modes = [m == "stream" for m in args.modes.split(",")]
    args.targets = set(args.targets.split(","))
    if args.no_pin or not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        args.gateway_cpu = args.harness_cpu = None
    sys.exit(run(args))


if __name__ == "__main__":
    main()
