"""Engine speed: LlamaCppEngine against raw llama-cpp-python on the same GGUF, in one run.

Measured, all greedy, with the same thread count:

- decode tok/s of one stream through ``LlamaCppEngine`` and through llama-cpp-python's high-level
  ``Llama.generate`` (same prompt; the raw loop ignores end-of-generation tokens, the engine stops
  at them, so each rate is taken over the tokens it produced); decode rates exclude prefill;
- aggregate decode tok/s with 2/4/8 concurrent streams (distinct prompts) through the engine,
  over the window in which every stream is decoding;
- budget forcing on a ~1k-token prompt: time from ``resume(phrase + </think>)`` on the paused
  sequence to its first answer token, against re-prompting from scratch (a new sequence with
  prompt + reasoning + phrase on an empty cache, so that everything is evaluated again).

Each measurement runs ``--rounds`` times (raw and engine alternating) and keeps the best rate /
the median latency, since other processes on the machine add noise.

    python bench/engine.py --model PATH [--tokens 128] [--streams 1,2,4,8] [--rounds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from thinkserve.core.types import SamplingParams
from thinkserve.engine.base import Checkpoint, EngineFinished, EngineRequest, Paused, TokenEvent
from thinkserve.engine.llamacpp import LlamaCppEngine

GREEDY = SamplingParams(temperature=0.0)
TOPICS = [
    "the history of the printing press",
    "how compilers optimize loops",
    "the life cycle of stars",
    "the economics of container shipping",
    "the architecture of medieval cathedrals",
    "how vaccines train the immune system",
    "the mathematics of public-key cryptography",
    "the ecology of coral reefs",
]
BUDGET_PHRASE = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking "
    "directly now.\n</think>\n\n"
)
FILLER = (
    "A logistics company operates warehouses in several cities. Each warehouse has a fixed "
    "capacity, a daily operating cost and a set of trucks with different ranges and loads. "
    "Orders arrive during the day with a destination, a weight and a delivery deadline. "
)


def chat_prompt(engine: LlamaCppEngine, user: str, *, think: bool = False) -> list[int]:
    text = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
    if think:
        text += "<think>\n"
    return engine.tokenizer.encode(text)


def decode_rate(times: list[float]) -> float:
    """Tokens per second between the first and the last token (prefill excluded)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


# -- raw llama-cpp-python -----------------------------------------------------------------------


def raw_single_stream(llm: object, prompt: list[int], n_tokens: int) -> tuple[float, int]:
    times: list[float] = []
    for _ in llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True):  # type: ignore[attr-defined]
        times.append(time.perf_counter())
        if len(times) >= n_tokens:
            break
    return decode_rate(times), len(times)


# -- LlamaCppEngine -----------------------------------------------------------------------------


@dataclass
class StreamRun:
    times: list[float]
    reason: str


async def run_streams(engine: LlamaCppEngine, prompts: list[list[int]], n_tokens: int) -> list[StreamRun]:
    async def one(i: int, prompt: list[int]) -> StreamRun:
        seq = engine.submit(EngineRequest(f"bench-{i}", prompt, GREEDY, n_tokens))
        times: list[float] = []
        reason = "?"
        async for event in seq:
            if isinstance(event, TokenEvent):
                times.append(time.perf_counter())
            elif isinstance(event, EngineFinished):
                reason = event.reason
        return StreamRun(times, reason)

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))


def aggregate_rate(runs: list[StreamRun]) -> tuple[float, int]:
    """Tokens per second over the window in which every stream was decoding."""
    usable = [r.times for r in runs if len(r.times) >= 2]
    if not usable:
        return 0.0, 0
    start = max(t[0] for t in usable)
    end = min(t[-1] for t in usable)
    if end <= start:
        return 0.0, 0
    tokens = sum(sum(1 for x in t if start < x <= end) for t in usable)
    return tokens / (end - start), tokens


@dataclass
class BudgetTrial:
    switch_s: float
    reprompt_s: float
    reasoning_tokens: int
    reprompt_prompt: int
    reprompt_cached: int


async def budget_trial(
    engine: LlamaCppEngine, prompt: list[int], budget: int, phrase: list[int]
) -> BudgetTrial:
    # on_end: a model that ends its turn inside the budget pauses there too (as the service does).
    checkpoint = Checkpoint(limit=budget, on_end=True)
    seq = engine.submit(EngineRequest("budget", prompt, GREEDY, budget + 64, checkpoint))
    reasoning: list[int] = []
    async for event in seq:
        if isinstance(event, TokenEvent):
            reasoning.append(event.token)
        elif isinstance(event, EngineFinished):
            raise RuntimeError(f"the model finished ({event.reason}) before the budget of {budget} tokens")
        elif isinstance(event, Paused):
            break
    start = time.perf_counter()
    seq.resume(phrase)
    switch = float("nan")
    async for event in seq:
        if isinstance(event, TokenEvent) and not event.injected:
            switch = time.perf_counter() - start
            break
    seq.cancel()  # frees its KV cells: the re-prompt below starts from an empty cache

    again = [*prompt, *reasoning, *phrase]
    start = time.perf_counter()
    seq2 = engine.submit(EngineRequest("reprompt", again, GREEDY, 1))
    reprompt = float("nan")
    cached = -1
    async for event in seq2:
        if isinstance(event, TokenEvent) and reprompt != reprompt:
            reprompt = time.perf_counter() - start
        elif isinstance(event, EngineFinished):
            cached = event.cached_tokens
    return BudgetTrial(switch, reprompt, len(reasoning), len(again), cached)


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per stream (default 128)")
    parser.add_argument("--streams", default="1,2,4,8", help="concurrent stream counts (default 1,2,4,8)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions; best rate, median latency")
    parser.add_argument("--prompt-tokens", type=int, default=1000, help="budget-forcing prompt size")
    parser.add_argument("--budget", type=int, default=64, help="thinking budget before the switch")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    streams = sorted({int(s) for s in args.streams.split(",")} | {1})
    model = str(Path(args.model).resolve())

    asyncio.run(_main(args, model, streams))


async def _main(args: argparse.Namespace, model: str, streams: list[int]) -> None:
    from llama_cpp import Llama

    n_seq = max(streams)
    engine = LlamaCppEngine(
        model, n_ctx=max(4096, n_seq * (args.tokens + 128)), n_seq=n_seq, n_threads=args.threads
    )
    await asyncio.to_thread(engine.start)
    # Same cache size, batch, threads and attention kernel as the engine (whose flash-attention
    # setting is llama.cpp's "auto", which turns it on for CPUs; Llama's default is off).
    llm = Llama(
        model_path=model,
        n_ctx=engine.stats.kv_size,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        flash_attn=True,
        verbose=False,
    )
    prompts = [chat_prompt(engine, f"Write a very long, detailed essay about {t}.") for t in TOPICS]
    while len(prompts) < n_seq:
        prompts += prompts
    log(f"model {Path(model).name}, {args.threads} threads, {args.tokens} tokens per stream")

    raw_best, engine_best = (0.0, 0), (0.0, 0)
    multi: dict[int, tuple[float, int]] = {}
    for r in range(args.rounds):
        raw = raw_single_stream(llm, prompts[0], args.tokens)
        raw_best = max(raw_best, raw)
        one = await run_streams(engine, prompts[:1], args.tokens)
        single = (decode_rate(one[0].times), len(one[0].times))
        engine_best = max(engine_best, single)
        log(
            f"round {r + 1}: raw {raw[0]:.1f} tok/s ({raw[1]} tokens), "
            f"engine {single[0]:.1f} tok/s ({single[1]} tokens)"
        )
        for k in streams:
            if k == 1:
                continue
            rate = aggregate_rate(await run_streams(engine, prompts[:k], args.tokens))
            multi[k] = max(multi.get(k, (0.0, 0)), rate)
            log(f"round {r + 1}: {k} streams {rate[0]:.1f} tok/s aggregate")
    del llm
    gc.collect()
    await engine.aclose()

    # Budget forcing on its own engine: one slot, so the re-prompt cannot reuse anything.
    budget_engine = LlamaCppEngine(model, n_ctx=4096, n_seq=1, n_threads=args.threads)
    await asyncio.to_thread(budget_engine.start)
    tok = budget_engine.tokenizer
    filler = tok.encode(FILLER * (args.prompt_tokens // 40 + 2))
    user = tok.decode(filler[: args.prompt_tokens - 40]) + "\nPlan the cheapest delivery schedule."
    long_prompt = chat_prompt(budget_engine, user, think=True)
    phrase = tok.encode(BUDGET_PHRASE)
    trials = []
    for r in range(args.rounds):
        trial = await budget_trial(budget_engine, long_prompt, args.budget, phrase)
        trials.append(trial)
        log(
            f"round {r + 1}: switch {trial.switch_s * 1000:.0f} ms after {trial.reasoning_tokens} tokens, "
            f"re-prompt {trial.reprompt_s * 1000:.0f} ms "
            f"({trial.reprompt_prompt} tokens, {trial.reprompt_cached} cached)"
        )
    await budget_engine.aclose()

    switch = statistics.median(t.switch_s for t in trials)
    reprompt = statistics.median(t.reprompt_s for t in trials)
    one_stream = engine_best[0]
    rows = [
        (
            "Decode, 1 stream (tok/s)",
            f"{one_stream:.1f}",
            f"{raw_best[0]:.1f}",
            _ratio(one_stream, raw_best[0], 0.95),
        ),
    ]
    for k in streams:
        if k in multi:
            rows.append(
                (
                    f"Decode, {k} streams aggregate (tok/s)",
                    f"{multi[k][0]:.1f}",
                    "",
                    _ratio(multi[k][0], one_stream, 1.5 if k == 4 else None) + " vs 1 stream",
                )
            )
    rows.append(
        (
            f"Budget switch, time to first answer token "
            f"({len(long_prompt)}-token prompt, budget {args.budget})",
            f"{switch * 1000:.0f} ms",
            f"{reprompt * 1000:.0f} ms (re-prompt, {trials[0].reprompt_prompt} tokens evaluated)",
            _ratio(reprompt, switch, 4.0) + " faster",
        )
    )
    table = [
        f"Model `{Path(model).name}`, {args.threads} threads, greedy, {args.tokens} tokens per stream, "
        f"best of {args.rounds} rounds (latencies: median).",
        "",
        "| Measurement | LlamaCppEngine | Raw llama-cpp-python / baseline | Ratio (target) |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
    ]
    text = "\n".join(table)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def _ratio(value: float, base: float, target: float | None) -> str:
    ratio = value / base if base else float("nan")
    return f"{ratio:.2f}x" + (f" (>= {target}x)" if target else "")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
