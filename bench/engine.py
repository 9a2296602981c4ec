"""Engine speed: LlamaCppEngine against raw llama-cpp-python on the same GGUF, in one run.

Measured, all greedy, with the same thread count, cache size and attention kernel:

- decode tok/s of one stream through ``LlamaCppEngine`` and through llama-cpp-python's high-level
  ``Llama.generate`` (in a child process, see ``raw_worker``), same prompt, exactly ``--tokens``
  tokens each: the raw loop feeds end-of-generation tokens back like any other, and for this
  benchmark the engine's tokenizer treats none as final, so both decode the same token sequence
  (checked); prefill excluded;
- aggregate decode tok/s with 2/4/8 concurrent streams (distinct prompts) through the engine,
  over the window in which every stream is decoding, next to the ceiling: bare ``llama_decode``
  calls carrying one token of each of k sequences, without any scheduling (``decode_ceiling``);
- budget forcing on a ~1k-token prompt: time from ``resume(phrase + </think>)`` on the paused
  sequence to its first answer token, against re-prompting from scratch (a new sequence with
  prompt + reasoning + phrase on an empty cache, so that everything is evaluated again).

Each measurement runs ``--rounds`` times (raw and engine alternating) and reports the best rate
with the median, and the median latency: other processes on the machine add a lot of noise (with
2 cores and 2 llama.cpp threads, any background load can slow a decode step many times over).

    python bench/engine.py --model PATH [--tokens 128] [--streams 1,2,4,8] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

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


def background_load(seconds: float = 2.0) -> float | None:
    """Share of CPU time (0-100) other processes use right now, from /proc/stat (Linux only)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]) - idle, idle

    try:
        busy0, idle0 = sample()
        time.sleep(seconds)
        busy1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = (busy1 - busy0) + (idle1 - idle0)
    return 100.0 * (busy1 - busy0) / total if total else None


def decode_rate(times: list[float]) -> float:
    """Tokens per second between the first and the last token (prefill excluded)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


# -- raw llama-cpp-python -----------------------------------------------------------------------


def raw_worker(conn: Connection, model: str, threads: int, n_ctx: int) -> None:
    """Child process: a high-level ``Llama`` that runs single streams on request.

    The baseline lives in its own process, as it would in production, so that neither side runs
    with the other's llama.cpp context and OpenMP thread team idling in the same process.
    """
    from llama_cpp import Llama

    from thinkserve.engine.llamacpp_cpu import load_cpu_backend

    # The same CPU backend the engine picks (a portable build has no default search path).
    load_cpu_backend()
    # Same cache size, batch, threads and attention kernel (flash attention off on CPUs) as the engine.
    llm = Llama(
        model_path=model,
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        flash_attn=False,
        verbose=False,
    )
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        kind, prompts, n_tokens = job
        if kind == "ceiling":
            conn.send(decode_ceiling(llm.model, prompts, n_tokens, threads, n_ctx))
            continue
        # Llama.generate never stops by itself: end-of-generation tokens are fed back like any
        # other, so exactly n_tokens are decoded.
        times: list[float] = []
        tokens: list[int] = []
        for token in llm.generate(prompts[0], temp=0.0, repeat_penalty=1.0, reset=True):
            times.append(time.perf_counter())
            tokens.append(token)
            if len(times) >= n_tokens:
                break
        conn.send((decode_rate(times), tokens))


def decode_ceiling(model: object, prompts: list[list[int]], n_tokens: int, threads: int, n_ctx: int) -> float:
    """Aggregate tok/s of bare ``llama_decode`` calls carrying one token of each of len(prompts)
    sequences (greedy by argmax, no Python scheduling at all): what batching can give at best."""
    import llama_cpp as lc
    import numpy as np

    k = len(prompts)
    params = lc.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = n_ctx, 512, 512, k
    params.n_threads = params.n_threads_batch = threads
    params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.kv_unified = True
    ctx = lc.llama_init_from_model(model, params)
    n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
    batch = lc.llama_batch_init(512, 0, 1)

    def decode(entries: list[tuple[int, int, int, bool]]) -> None:
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(entries)
        if lc.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def argmax(i: int) -> int:
        return int(np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).argmax())

    try:
        last: list[int] = []
        for seq, prompt in enumerate(prompts):
            decode([(t, p, seq, p == len(prompt) - 1) for p, t in enumerate(prompt)])
            last.append(argmax(len(prompt) - 1))
        pos = [len(prompt) for prompt in prompts]
        times: list[float] = []
        for _ in range(n_tokens):
            decode([(last[seq], pos[seq], seq, True) for seq in range(k)])
            last = [argmax(i) for i in range(k)]
            pos = [p + 1 for p in pos]
            times.append(time.perf_counter())
        return k * decode_rate(times)
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)


def raw_single_stream(conn: Connection, prompt: list[int], n_tokens: int) -> tuple[float, list[int]]:
    conn.send(("generate", [prompt], n_tokens))
    rate, tokens = conn.recv()
    return float(rate), list(tokens)


def raw_ceiling(conn: Connection, prompts: list[list[int]], n_tokens: int) -> float:
    conn.send(("ceiling", prompts, n_tokens))
    return float(conn.recv())


# -- LlamaCppEngine -----------------------------------------------------------------------------


@dataclass
class StreamRun:
    times: list[float]
    tokens: list[int]
    reason: str


async def run_streams(engine: LlamaCppEngine, prompts: list[list[int]], n_tokens: int) -> list[StreamRun]:
    async def one(i: int, prompt: list[int]) -> StreamRun:
        seq = engine.submit(EngineRequest(f"bench-{i}", prompt, GREEDY, n_tokens))
        times: list[float] = []
        tokens: list[int] = []
        reason = "?"
        async for event in seq:
            if isinstance(event, TokenEvent):
                times.append(time.perf_counter())
                tokens.append(event.token)
            elif isinstance(event, EngineFinished):
                reason = event.reason
        return StreamRun(times, tokens, reason)

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
    parser.add_argument("--rounds", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--prompt-tokens", type=int, default=1000, help="budget-forcing prompt size")
    parser.add_argument("--budget", type=int, default=64, help="thinking budget before the switch")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    streams = sorted({int(s) for s in args.streams.split(",")} | {1})
    model = str(Path(args.model).resolve())

    asyncio.run(_main(args, model, streams))


async def _main(args: argparse.Namespace, model: str, streams: list[int]) -> None:
    load = background_load()
    if load is not None:
        log(f"background CPU load before the run: {load:.0f}%")
    n_seq = max(streams)
    engine = LlamaCppEngine(
        model, n_ctx=max(4096, n_seq * (args.tokens + 128)), n_seq=n_seq, n_threads=args.threads
    )
    await asyncio.to_thread(engine.start)
    # A fixed number of tokens per stream, like the raw loop: end-of-generation tokens are sampled
    # and fed back like any other (benchmark only; the streams then decode exactly --tokens each).
    engine.tokenizer.is_eog = lambda token: False  # type: ignore[method-assign]
    conn, child_conn = multiprocessing.get_context("spawn").Pipe()
    raw = multiprocessing.get_context("spawn").Process(
        target=raw_worker, args=(child_conn, model, args.threads, engine.stats.kv_size), daemon=True
    )
    raw.start()
    if conn.recv() != "ready":
        raise RuntimeError("the raw llama-cpp-python process did not start")
    prompts = [chat_prompt(engine, f"Write a very long, detailed essay about {t}.") for t in TOPICS]
    while len(prompts) < n_seq:
        prompts += prompts
    log(f"model {Path(model).name}, {args.threads} threads, {args.tokens} tokens per stream")

    # Single stream first, raw and engine alternating, while the engine's cache holds nothing but
    # that prompt: idle caches left by the multi-stream runs widen the unified cache's attention
    # span, which a one-user server would not have.
    raw_rates: list[float] = []
    engine_rates: list[float] = []
    for r in range(args.rounds):
        raw_rate, raw_tokens = raw_single_stream(conn, prompts[0], args.tokens)
        one = (await run_streams(engine, prompts[:1], args.tokens))[0]
        raw_rates.append(raw_rate)
        engine_rates.append(decode_rate(one.times))
        log(
            f"round {r + 1}: raw {raw_rate:.1f} tok/s ({len(raw_tokens)} tokens), "
            f"engine {engine_rates[-1]:.1f} tok/s ({len(one.tokens)} tokens, "
            f"same tokens as raw: {one.tokens == raw_tokens})"
        )
    multi: dict[int, list[float]] = {}
    ceiling: dict[int, list[float]] = {}
    for r in range(args.rounds):
        for k in streams:
            bare = raw_ceiling(conn, prompts[:k], args.tokens)
            ceiling.setdefault(k, []).append(bare)
            if k == 1:
                log(f"round {r + 1}: bare llama_decode, 1 sequence {bare:.1f} tok/s")
                continue
            rate, _ = aggregate_rate(await run_streams(engine, prompts[:k], args.tokens))
            multi.setdefault(k, []).append(rate)
            log(f"round {r + 1}: {k} streams {rate:.1f} tok/s aggregate, bare llama_decode {bare:.1f} tok/s")
    conn.send(None)
    raw.join()
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
    one_stream = max(engine_rates)
    rows = [
        (
            "Decode, 1 stream (tok/s)",
            f"{one_stream:.1f} (median {statistics.median(engine_rates):.1f})",
            f"{max(raw_rates):.1f} (median {statistics.median(raw_rates):.1f})",
            _ratio(one_stream, max(raw_rates), 0.95),
        ),
    ]
    bare_one = max(ceiling[1])
    for k in streams:
        if k in multi:
            bare = max(ceiling[k])
            rows.append(
                (
                    f"Decode, {k} streams aggregate (tok/s)",
                    f"{max(multi[k]):.1f} (median {statistics.median(multi[k]):.1f})",
                    f"bare llama_decode, {k} sequences per call: {bare:.1f} "
                    f"({_ratio(bare, bare_one, None)} of 1 sequence, {bare_one:.1f})",
                    _ratio(max(multi[k]), one_stream, 1.5 if k == 4 else None)
                    + f" vs 1 stream; {_ratio(max(multi[k]), bare, None)} of bare decode",
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
    background = f", background CPU load {load:.0f}% at start" if load is not None else ""
    table = [
        f"Model `{Path(model).name}`, {args.threads} threads, greedy, {args.tokens} tokens per stream, "
        f"best of {args.rounds} rounds (median in brackets; latencies: median){background}.",
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
