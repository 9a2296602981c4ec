"""llama.cpp builds side by side: raw single-stream decode speed of one model under several Python
environments, each with its own llama-cpp-python build, in one run.

Each build runs ``python -m thinkserve.engine.llamacpp_probe MODEL --amx off --tokens N`` in a fresh
process (the probe's own greedy loop on bare ``llama_decode``, no engine around it), rounds
alternating between builds. Each picks its CPU backend as thinkserve does: a portable build its
best variant without AMX, a ``-march=native`` build its built-in backend, with llama.cpp's extra
buffer types off if that backend carries AMX kernels (they die with SIGILL on this CPU).

    python bench/cpu_build.py --model PATH --build native=/tmp/venv-native/bin/python \\
        --build portable=.venv/bin/python [--tokens 128] [--rounds 5]

The first build is the baseline of the ratios: name the best build you have first. ``PYTHONPATH``
is set to this checkout's ``src``, so an environment with only llama-cpp-python (and its
dependencies) is enough.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def decode(python: str, model: str, tokens: int, threads: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [python, "-m", "thinkserve.engine.llamacpp_probe", model, "--amx", "off"]
    command += ["--tokens", str(tokens), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, env=env, timeout=900, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise SystemExit(f"{python} failed ({done.returncode}): {' | '.join(tail)}")
    result: dict[str, object] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--build", action="append", required=True, help="NAME=PYTHON (first: reference)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    builds = [tuple(spec.split("=", 1)) for spec in args.build]
    rates: dict[str, list[float]] = {name: [] for name, _ in builds}
    variant: dict[str, str] = {}
    outputs: dict[str, object] = {}
    for r in range(args.rounds):
        for name, python in builds:
            result = decode(python, args.model, args.tokens, args.threads)
            rates[name].append(float(str(result["decode_tok_s"])))
            variant[name] = str(result["variant"])
            outputs[name] = result["tokens"]
        print(f"# round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.1f}" for n, _ in builds), file=sys.stderr)
    reference = builds[0][0]
    same = all(out == outputs[reference] for out in outputs.values())
    print(
        f"Model `{Path(args.model).name}`, {args.tokens} tokens, {args.rounds} rounds, {args.threads} threads"
    )
    print(f"Same greedy tokens from every build: {'yes' if same else 'no'}")
    print()
    print("| Build | CPU backend | Decode tok/s, best | median | Ratio of medians |")
    print("|---|---|---|---|---|")
    ref = statistics.median(rates[reference])
    for name, _ in builds:
        med = statistics.median(rates[name])
        print(f"| {name} | {variant[name]} | {max(rates[name]):.1f} | {med:.1f} | {med / ref:.3f}x |")


if __name__ == "__main__":
    main()
