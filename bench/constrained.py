"""Constrained decoding cost: time per sampled token with a grammar against without, in one run.

One engine (``LlamaCppEngine``, one sequence at a time, the same sampling chain for every mode:
temperature 0.7, top-k 20, top-p 0.95, a seed per round) decodes the same prompt, thinking off:

- ``free``: no constraint;
- ``json_object``: any JSON object (``tools.grammar.json_grammar``);
- ``json_schema``: a small object schema with a string, an integer and an enum;
- ``tool_call``: a forced Hermes call of Model Studio's weather tool (``tools.grammar.call_grammar``).

For each request the time per token is the time from its first token to its last over the tokens
in between (prefill excluded), as the consumer sees the events. The modes run interleaved,
``--rounds`` times each; the table gives the median and best of each mode and the median's ratio to
``free``. Other processes on the machine add noise, hence the interleaving and the medians.

    python bench/constrained.py [--model PATH] [--tokens 128] [--rounds 7] [--threads N]
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
    stamps: list[float] = []
    async for event in engine.submit(request):
        if isinstance(event, TokenEvent):
            stamps.append(time.perf_counter())
        elif isinstance(event, EngineFinished):
            break
    if len(stamps) < 3:
        return float("nan"), len(stamps)
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), len(stamps)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(TINY))
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
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
        per_token: dict[str, list[float]] = {m: [] for m in modes}
        counts: dict[str, list[int]] = {m: [] for m in modes}
        await one(engine, prompt, None, 0, 8)  # warm-up
        for r in range(args.rounds):
            for mode, rules in modes.items():
                seconds, n = await one(engine, prompt, rules, 1000 + r, args.tokens)
                if seconds == seconds:  # not NaN
                    per_token[mode].append(seconds)
                counts[mode].append(n)
        base = statistics.median(per_token["free"])
        name = Path(args.model).name
        print(f"model: {name}; prompt {len(prompt)} tokens; up to {args.tokens} tokens; {args.rounds} rounds")
        print(f"backend: {engine.health().reason}")
        print("| mode | ms/token (median) | best | tokens per answer (median) | median vs free |")
        print("|---|---|---|---|---|")
        for mode in modes:
            times = per_token[mode]
            med = statistics.median(times)
            n = statistics.median(counts[mode])
            ratio = f"{med / base:.2f}x (+{(med - base) * 1000:.2f} ms)"
            print(f"| {mode} | {med * 1000:.2f} | {min(times) * 1000:.2f} | {n:.0f} | {ratio} |")
    finally:
        await engine.aclose()


if __name__ == "__main__":
    asyncio.run(main())
