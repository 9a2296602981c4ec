"""The thinking budget on vLLM: thinkserve's checkpoint/resume against vLLM's own budget, one run.

Both run on the same ``VllmEngine`` (one vLLM engine, started with a ``ReasoningConfig`` whose
forced end is Qwen3's early-stop phrase + ``</think>``, so that both append the same text), greedy,
over the same thinking prompts:

- **checkpoint**: thinkserve's mechanism. The request's ``max_tokens`` stops it at the budget, the
  phrase is appended and a second request continues over prompt + reasoning + phrase; vLLM's
  prefix cache holds all of that but the last partial block.
- **vllm**: ``SamplingParams.thinking_token_budget`` (vLLM's sampler forces the end tokens once the
  budget is spent, one token per decode step, in the same request).

For each: how many cut requests wrote exactly ``budget`` reasoning tokens (the tokens after
``<think>`` before the phrase), how many tokens vLLM reports as its output (the forced phrase is
part of them on vLLM's side; injected tokens are not on thinkserve's), and the wall time per
request alone (concurrency 1) and with ``--concurrency`` requests at once (requests/s). Each
round runs every prompt both ways, alternating; timings are the best round with the median in
brackets (other processes on a shared machine add a lot of noise; the counts do not move).

    python bench/vllm_budget.py [--model tests/fixtures/tiny-qwen3-hf] [--budgets 8,24] [--requests 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from thinkserve.core.types import Message, SamplingParams
from thinkserve.engine.protocol import EngineFinished, EngineRequest, Paused, TokenEvent
from thinkserve.engine.vllm.engine import VllmEngine
from thinkserve.engine.vllm.settings import VllmSettings
from thinkserve.thinking.budget import EARLY_STOP, ThinkingBudget
from thinkserve.thinking.chat_format import ChatFormat, Prompt

QUESTIONS = [
    "What is 12 plus 7?",
    "你是誰",
    "Tell me about the moon",
    "What is 35 minus 8?",
    "Hello, who are you?",
    "Count from 3 to 9",
    "What color is the sky?",
    "Write a short story about a dragon",
    "What is 6 times 7?",
    "Name a big city",
    "What is the capital of France?",
    "Say something about winter",
    "How many legs does a cat have?",
    "What is 100 divided by 4?",
    "Describe a robot",
    "What is 9 plus 15?",
]
ANSWER_TOKENS = 64


@dataclass
class Outcome:
    reasoning: int
    """Tokens the model wrote after ``<think>`` before the phrase or its own ``</think>``."""
    cut: bool
    output_tokens: int
    """Output tokens as the engine counts them (vLLM: forced ones included)."""
    seconds: float


async def by_checkpoint(
    engine: VllmEngine, budget: ThinkingBudget, prompt: Prompt, n: int, rid: str
) -> Outcome:
    limit = n + 1  # the model writes its own <think>: one sampled token more
    checkpoint = budget.checkpoint(prompt, n, thinking=True, max_tokens=limit + ANSWER_TOKENS)
    request = EngineRequest(
        rid, prompt.tokens, SamplingParams(temperature=0.0), limit + ANSWER_TOKENS, checkpoint
    )
    start = time.perf_counter()
    sequence = engine.submit(request)
    sampled: list[int] = []
    at_pause: int | None = None
    finished: EngineFinished | None = None
    while finished is None:
        async for event in sequence:
            if isinstance(event, TokenEvent) and not event.injected:
                sampled.append(event.token)
            elif isinstance(event, Paused):
                at_pause = len(sampled)
                sequence.resume(budget.resume_tokens(event))
            elif isinstance(event, EngineFinished):
                finished = event
    seconds = time.perf_counter() - start
    cut = at_pause is not None
    reasoning = _reasoning(engine, sampled[:at_pause] if cut else sampled)
    return Outcome(reasoning, cut, finished.sampled_tokens, seconds)


async def by_vllm(engine: VllmEngine, prompt: Prompt, n: int, forced: list[int], rid: str) -> Outcome:
    from vllm import SamplingParams as VllmParams
    from vllm import TokensPrompt

    params = VllmParams(
        temperature=0.0,
        max_tokens=n + 1 + len(forced) + ANSWER_TOKENS,
        thinking_token_budget=n,
        detokenize=False,
        skip_special_tokens=False,
    )
    start = time.perf_counter()
    final: Any = None
    async for out in engine._llm.generate(TokensPrompt(prompt_token_ids=prompt.tokens), params, rid):
        final = out
    seconds = time.perf_counter() - start
    tokens = list(final.outputs[0].token_ids)
    at = _find(tokens, forced)
    cut = at >= 0
    return Outcome(_reasoning(engine, tokens[:at] if cut else tokens), cut, len(tokens), seconds)


def _find(tokens: list[int], part: list[int]) -> int:
    for i in range(len(tokens) - len(part) + 1):
        if tokens[i : i + len(part)] == part:
            return i
    return -1


def _reasoning(engine: VllmEngine, tokens: list[int]) -> int:
    """Tokens after ``<think>`` and before ``</think>`` (or the end of ``tokens``: the cut)."""
    start = engine.tokenizer.token_id("<think>")
    end = engine.tokenizer.token_id("</think>")
    first = tokens.index(start) + 1 if start in tokens else 0
    return (tokens.index(end) if end in tokens else len(tokens)) - first


async def one_pass(
    method: str,
    engine: VllmEngine,
    budget: ThinkingBudget,
    prompts: list[Prompt],
    n: int,
    forced: list[int],
    concurrency: int,
    tag: str,
) -> tuple[list[Outcome], float]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int, prompt: Prompt) -> Outcome:
        async with semaphore:
            rid = f"{tag}-{method}-{n}-{concurrency}-{i}"
            if method == "checkpoint":
                return await by_checkpoint(engine, budget, prompt, n, rid)
            return await by_vllm(engine, prompt, n, forced, rid)

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
    return list(outcomes), time.perf_counter() - start


async def main_async(args: argparse.Namespace) -> None:
    from vllm.config.reasoning import ReasoningConfig

    settings = VllmSettings(
        "bench",
        model=args.model,
        dtype="float32",
        enforce_eager=True,
        max_model_len=4096,
        kv_cache_memory_bytes=256 << 20,
        engine_args={
            "reasoning_config": ReasoningConfig(reasoning_parser="qwen3", reasoning_end_str=EARLY_STOP)
        },
    )
    engine = VllmEngine(settings, args.model)
    await engine.start()
    try:
        chat = ChatFormat(engine.tokenizer)
        budget = ThinkingBudget(chat)
        forced = engine.tokenizer.encode(EARLY_STOP)
        prompts = [chat.render((Message("user", q),), thinking=True) for q in QUESTIONS[: args.requests]]
        print(f"{engine.health().reason}; {len(prompts)} prompts, greedy; forced phrase {len(forced)} tokens")
        # warm up both paths (first requests pay one-off costs)
        await one_pass("checkpoint", engine, budget, prompts[:2], 4, forced, 2, "warm")
        await one_pass("vllm", engine, budget, prompts[:2], 4, forced, 2, "warm")
        print()
        print(
            "| budget | method | cut requests | exact (= budget) | output tokens/request (engine's count) "
            f"| s/request alone: best (median) round | req/s, {args.concurrency} at once: best (median) |"
        )
        print("|---|---|---|---|---|---|---|")
        for n in args.budgets:
            rows: dict[str, list[tuple[list[Outcome], float]]] = {"checkpoint": [], "vllm": []}
            for rnd in range(args.rounds):
                for method in rows:  # alternating, so that background load hits both alike
                    alone, _ = await one_pass(method, engine, budget, prompts, n, forced, 1, f"r{rnd}")
                    together, wall = await one_pass(
                        method, engine, budget, prompts, n, forced, args.concurrency, f"r{rnd}"
                    )
                    rows[method].append((alone, len(together) / wall))
            for method, runs in rows.items():
                outcomes = [o for alone, _ in runs for o in alone]
                cut = [o for o in outcomes if o.cut]
                exact = sum(1 for o in cut if o.reasoning == n)
                latencies = [statistics.median(o.seconds for o in alone) for alone, _ in runs]
                rates = [rate for _, rate in runs]
                print(
                    f"| {n} | {method} | {len(cut)}/{len(outcomes)} | {exact}/{len(cut)} "
                    f"| {sum(o.output_tokens for o in runs[0][0]) / len(prompts):.1f} "
                    f"| {min(latencies):.3f} ({statistics.median(latencies):.3f}) "
                    f"| {max(rates):.1f} ({statistics.median(rates):.1f}) |"
                )
                if args.verbose:
                    print("   reasoning counts:", sorted({o.reasoning for o in cut}))
        print(f"\nvLLM requests made by thinkserve's sequences: {engine.counters.requests}")
    finally:
        await engine.aclose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tests/fixtures/tiny-qwen3-hf")
    p.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")], default=[8, 24])
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
