"""What a response cut at its tool call pays to report its cached prompt tokens, in one run.

A forced call of a weather tool, streamed, thinking off, on a real GGUF (the default model unless
``--model``): the time from the last event before ``Finished`` to ``Finished``, and the cached
tokens ``Finished`` reports, with the wait for the engine's answer to the cancel (``CUT_S``, as
served) and without it (``CUT_S = 0``: the answer is not waited for, as before). The two take
turns, request by request; the same question each time, so that its prompt is in the cache.

    python bench/cut_wait.py [--model PATH] [--rounds 8]

Prints one line per mode: median, min and max of the gap in ms, and the cached tokens reported.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from pathlib import Path

from thinkserve.catalogue.spec import load_catalogue
from thinkserve.core.events import Finished
from thinkserve.core.paths import default_data_dir
from thinkserve.core.types import ChatRequest, Message, ToolChoice, ToolSpec
from thinkserve.default_model import default_model_path
from thinkserve.engine.llamacpp.engine import LlamaCppEngine
from thinkserve.service import decode
from thinkserve.service.generation import GenerationService, Runtime
from thinkserve.thinking.chat_format import ChatFormat

WEATHER = ToolSpec(
    "get_current_weather",
    "The weather in a city.",
    '{"properties": {"location": {"type": "string"}}, "required": ["location"], "type": "object"}',
)
REQUEST = ChatRequest(
    model="qwen-plus",
    messages=(Message("user", "What is the weather like in Hangzhou?"),),
    stream=True,
    enable_thinking=False,
    max_tokens=80,
    tools=(WEATHER,),
    tool_choice=ToolChoice("required", "get_current_weather"),
)


async def once(service: GenerationService) -> tuple[float, int]:
    """The gap before ``Finished`` in ms, and its cached tokens."""
    plan = service.render(service.check(REQUEST))
    last = time.perf_counter()
    async for event in service.stream(plan):
        now = time.perf_counter()
        if isinstance(event, Finished):
            return (now - last) * 1000, event.usage.cached_tokens
        last = now
    raise RuntimeError("the stream ended without Finished")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # CUT_S = 0 warns of the unanswered cancel every time
    model = args.model or default_model_path(default_data_dir(), show_progress=False)
    engine = LlamaCppEngine(str(model), n_ctx=4096, n_seq=2)
    engine.start()
    try:
        runtime = Runtime(engine, ChatFormat(engine.tokenizer))
        service = GenerationService(load_catalogue(), {"default": runtime})
        served = decode.CUT_S
        modes = {"wait (as served)": served, "no wait (CUT_S = 0)": 0.0}
        seen: dict[str, list[tuple[float, int]]] = {name: [] for name in modes}
        asyncio.run(once(service))  # the prompt into the cache
        for _ in range(args.rounds):
            for name, limit in modes.items():
                decode.CUT_S = limit
                seen[name].append(asyncio.run(once(service)))
        decode.CUT_S = served
    finally:
        engine.close()
    for name, runs in seen.items():
        gaps = [gap for gap, _ in runs]
        cached = sorted({c for _, c in runs})
        print(
            f"{name:>20}: gap before Finished median {statistics.median(gaps):.1f} ms "
            f"(min {min(gaps):.1f}, max {max(gaps):.1f}); cached tokens {cached}"
        )


if __name__ == "__main__":
    main()
