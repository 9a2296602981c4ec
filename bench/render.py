"""What rendering and tokenizing a prompt costs on the loop, against the hop to a worker thread:
the figures behind ``service.flow.OFF_LOOP_CHARS``.

    .venv/bin/python -m bench.render [path/to/model.gguf]

Without a model file it measures the fake engine's tokenizer (one token per character).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from thinkserve.core.types import Message
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.engine.protocol import Tokenizer
from thinkserve.thinking.chat_format import ChatFormat


def _tokenizer(argv: list[str]) -> Tokenizer:
    if len(argv) > 1:
        from thinkserve.engine.llamacpp.tokenizer import VocabFile

        return VocabFile(argv[1]).tokenizer
    return FakeEngine().tokenizer


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    times: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


async def _hop() -> float:
    times: list[float] = []
    for _ in range(200):
        start = time.perf_counter()
        await asyncio.to_thread(lambda: None)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    chat = ChatFormat(_tokenizer(sys.argv))
    print(f"thread hop (median): {asyncio.run(_hop()) * 1e3:.3f} ms")
    for chars in (256, 4096, 16384, 65536, 1 << 20):
        text = ("The quick brown fox jumps over the lazy dog. " * (chars // 45 + 1))[:chars]
        messages = (Message("user", text),)
        cost = _best(lambda m=messages: chat.render(m, thinking=True))
        print(f"render+tokenize {chars:>8} chars: {cost * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
