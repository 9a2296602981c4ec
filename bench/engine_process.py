"""What the engine process costs: the same llama.cpp engine in the gateway's process and in its own
supervised process (``engine.supervised``), side by side in one run.

Measured, greedy, same model, threads and cache:

- single-stream decode tok/s (first token to last, prefill excluded), ``--tokens`` tokens;
- per-request latency of a 1-token request (submit to ``EngineFinished``) on a short prompt that is
  fully cached after the first round: this is the fixed cost of a request, IPC included;
- the time from ``kill -9`` of the engine process until it is up again and until it answered;
- both alternate ``--rounds`` times (in-process first, then own process, every round); the best
  and the median are reported, since the machine is noisy.

    python bench/engine_process.py --model PATH [--tokens 128] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from thinkserve.config import EngineSpec
from thinkserve.core.types import SamplingParams
from thinkserve.engine.base import Engine, EngineFinished, EngineRequest, TokenEvent
from thinkserve.engine.llamacpp import LlamaCppEngine
from thinkserve.engine.llamacpp_tokenizer import VocabFile
from thinkserve.engine.supervised.supervisor import SupervisedEngine, kill
from thinkserve.engine.supervised.wire import Start

GREEDY = SamplingParams(temperature=0.0)


def prompt(engine: Engine, user: str) -> list[int]:
    text = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return engine.tokenizer.encode(text)


async def decode_rate(engine: Engine, tokens: list[int], n: int) -> tuple[float, list[int]]:
    times: list[float] = []
    out: list[int] = []
    async for event in engine.submit(EngineRequest("bench", tokens, GREEDY, n)):
        if isinstance(event, TokenEvent):
            times.append(time.perf_counter())
            out.append(event.token)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return rate, out


async def request_latency(engine: Engine, tokens: list[int], n: int = 20) -> float:
    """Median seconds from submit to EngineFinished for 1-token requests."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        async for event in engine.submit(EngineRequest("bench", tokens, GREEDY, 1)):
            if isinstance(event, EngineFinished):
                samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def until_state(engine: SupervisedEngine, *, up: bool) -> None:
    while True:
        if (engine.health().state == "up") == up:
            return
        await asyncio.sleep(0.005)


async def _main(args: argparse.Namespace) -> None:
    model = str(args.model)
    threads = args.threads
    proof_dir = Path(tempfile.mkdtemp(prefix="thinkserve-bench-"))
    inline = LlamaCppEngine(model, n_ctx=2048, n_seq=2, n_threads=threads, proof_dir=proof_dir)
    await asyncio.to_thread(inline.start)
    spec = EngineSpec("bench", model=model, n_ctx=2048, n_seq=2, n_threads=threads)
    vocab = VocabFile(model)
    remote = SupervisedEngine(
        "bench", Start("llamacpp", spec, model, str(proof_dir)), vocab.tokenizer, close_tokenizer=vocab.close
    )
    await remote.start()
    print(f"# in-process: {inline.describe()}; own process: {remote.health().reason}", file=sys.stderr)
    long_prompt = prompt(inline, "Write a long story about a lighthouse keeper.")
    short_prompt = prompt(inline, "Hi")
    rates: dict[str, list[float]] = {"inline": [], "process": []}
    latency: dict[str, list[float]] = {"inline": [], "process": []}
    try:
        for r in range(args.rounds):
            same = []
            for name, engine in (("inline", inline), ("process", remote)):
                rate, out = await decode_rate(engine, long_prompt, args.tokens)
                rates[name].append(rate)
                same.append(out)
                latency[name].append(await request_latency(engine, short_prompt))
            if same[0] != same[1]:
                raise SystemExit("the two engines decoded different tokens")
            print(
                f"# round {r + 1}: decode {rates['inline'][-1]:.1f} vs {rates['process'][-1]:.1f} tok/s, "
                f"request {latency['inline'][-1] * 1e3:.2f} vs {latency['process'][-1] * 1e3:.2f} ms",
                file=sys.stderr,
            )
        # Recovery: kill -9 the engine process; time until it serves again (backoff + reload).
        killed = time.perf_counter()
        kill(remote)
        await until_state(remote, up=False)
        await until_state(remote, up=True)
        recovery = time.perf_counter() - killed
        await decode_rate(remote, short_prompt, 4)
        served = time.perf_counter() - killed
    finally:
        await remote.aclose()
        await inline.aclose()
    best = {k: max(v) for k, v in rates.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    lat = {k: statistics.median(v) * 1e3 for k, v in latency.items()}
    per_token_us = (1 / med["process"] - 1 / med["inline"]) * 1e6
    lines = [
        f"Model: `{Path(model).name}`, {args.tokens} tokens, {args.rounds} rounds, {threads} threads",
        "",
        "| Measure | In the gateway's process | Own process | Ratio (target) |",
        "|---|---|---|---|",
        f"| Decode, 1 stream (tok/s), best | {best['inline']:.1f} | {best['process']:.1f} | "
        f"{best['process'] / best['inline']:.3f}x (>= 0.97x) |",
        f"| Decode, 1 stream (tok/s), median | {med['inline']:.1f} | {med['process']:.1f} | "
        f"{med['process'] / med['inline']:.3f}x |",
        f"| 1-token request, median latency (ms) | {lat['inline']:.2f} | {lat['process']:.2f} | "
        f"+{lat['process'] - lat['inline']:.2f} ms |",
        f"| Cost per token (median step time difference) | | | {per_token_us:+.0f} us |",
        f"| Recovery after kill -9 (1 s backoff, then reload) | | {recovery:.2f} s up, "
        f"{served:.2f} s first answer | |",
    ]
    print("\n".join(lines))
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
