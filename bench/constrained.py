"""Constrained decoding cost: time per sampled token with a grammar against without, in one run.

One engine (``LlamaCppEngine``, one sequence at a time, the same sampling chain for every mode:
temperature 0.7, top-k 20, top-p 0.95, a seed per round) decodes the same prompt, thinking off:

- ``free``: no constraint;
- ``json_object``: any JSON object (``tools.grammar.json_grammar``);
- ``json_schema``: a small object schema with a string, an integer and an enum;
- ``tool_call``: a forced Hermes call of Model Studio's weather tool (``tools.grammar.call_grammar``).

For each request the cost per token is taken from its first token to its last, over the tokens in
between (prefill excluded), twice: in **CPU time** of this process (the engine runs in it: decode,
grammar and sampling), which other processes on a shared machine barely disturb, and in wall time
as the consumer sees the events. ``--threads 1`` (the default here) keeps llama.cpp's threads from
spinning, so CPU time is work done. The modes run interleaved, ``--rounds`` times each; the table
gives medians and the ratio of the CPU medians to ``free``.

    python bench/constrained.py [--model PATH] [--tokens 128] [--rounds 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from thinkserve.core.types import Message, ResponseFormat, SamplingParams, ToolSpec
from thinkserve.engine.llamacpp.engine import LlamaCppEngine
from thinkserve.engine.protocol import Constraint, EngineFinished, EngineRequest, TokenEvent
from thinkserve.thinking.chat_format import ChatFormat
from thinkserve.tools import grammar
from thinkserve.tools.formats import HERMES

TINY = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny-qwen3.gguf"
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "celsius": {"type": "integer"},
        "sky": {"enum": ["sunny", "cloudy", "rainy"]},
    },
    "required": ["city", "celsius", "sky"],
}
WEATHER = ToolSpec(
    "get_current_weather",
    "当你想查询指定城市的天气时非常有用。",
    json.dumps({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}),
)


def grammars() -> dict[str, str | None]:
    return {
        "free": None,
        "json_object": grammar.json_grammar(ResponseFormat()),
        "json_schema": grammar.json_grammar(ResponseFormat(json.dumps(SCHEMA))),
        "tool_call": grammar.call_grammar(HERMES, [WEATHER], only=None, parallel=False),
    }


async def one(
    engine: LlamaCppEngine, prompt: list[int], rules: str | None, seed: int, tokens: int
) -> tuple[float, int]:
    """Seconds per token after the first, and the tokens sampled."""
    sampling = SamplingParams(temperature=0.7, top_p=0.95, top_k=20, seed=seed)
    request = EngineRequest(
        f"bench-{seed}", prompt, sampling, tokens, constraint=None if rules is None else Constraint(rules)
    )
    stamps: list[tuple[float, float]] = []
    async for event in engine.submit(request):
        if isinstance(event, TokenEvent):
            stamps.append((time.process_time(), time.perf_counter()))
        elif isinstance(event, EngineFinished):
            break
    n = len(stamps)
    if n < 3:
        return float("nan"), float("nan"), n
    return (stamps[-1][0] - stamps[0][0]) / (n - 1), (stamps[-1][1] - stamps[0][1]) / (n - 1), n


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(TINY))
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    engine = LlamaCppEngine(args.model, n_ctx=4096, n_seq=1, n_threads=args.threads)
    await asyncio.to_thread(engine.start)
    try:
        chat = ChatFormat(engine.tokenizer)
        prompt = chat.render(
            [Message("user", "What is the weather like in Hangzhou right now? Answer in JSON.")],
            thinking=False,
        ).tokens
        modes = grammars()
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        wall: dict[str, list[float]] = {m: [] for m in modes}
        counts: dict[str, list[int]] = {m: [] for m in modes}
        await one(engine, prompt, None, 0, 8)  # warm-up
        for r in range(args.rounds):
            for mode, rules in modes.items():
                c, w, n = await one(engine, prompt, rules, 1000 + r, args.tokens)
                if c == c:  # not NaN
                    cpu[mode].append(c)
                    wall[mode].append(w)
                counts[mode].append(n)
        base = statistics.median(cpu["free"])
        name = Path(args.model).name
        print(f"model: {name}; prompt {len(prompt)} tokens; up to {args.tokens} tokens; {args.rounds} rounds")
        print(f"backend: {engine.health().reason}")
        print(
            "| mode | CPU ms/token (median) | wall ms/token (median) | tokens/answer (median) | CPU vs free |"
        )
        print("|---|---|---|---|---|")
        for mode in modes:
            med = statistics.median(cpu[mode])
            n = statistics.median(counts[mode])
            ratio = f"{med / base:.2f}x (+{(med - base) * 1000:.2f} ms)"
            walled = statistics.median(wall[mode]) * 1000
            print(f"| {mode} | {med * 1000:.2f} | {walled:.1f} | {n:.0f} | {ratio} |")
    finally:
        await engine.aclose()


if __name__ == "__main__":
    asyncio.run(main())
