"""The gateway's CPU per request without HTTP: admission, rendering, the scripted engine's tokens
through the decode pipeline, metering into SQLite, metrics; the loop's own thread only (the SQL
writer's thread is not counted). Steadier than the HTTP benchmark on a busy machine, so it shows
what a change to the hot path saves.

    .venv/bin/python bench/flow_cost.py [--requests 800] [--rounds 7] [--tokens 64]

Prints the minimum and the median over the rounds, in microseconds per request, of
``render + stream`` (the generation service alone) and ``begin + collect`` (the whole flow that a
non-streaming request runs: ``service.flow``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import uvloop
from starlette.datastructures import Headers

from thinkserve.api.openai.dialect import OpenAIDialect
from thinkserve.config import load_settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.monitor.metrics import Metrics
from thinkserve.platform import keys
from thinkserve.platform.limits import Limits
from thinkserve.platform.metering import ObservedGate
from thinkserve.platform.settings import PlatformSettings
from thinkserve.platform.stored_keys import StoredKeys
from thinkserve.service.flow import RequestFlow
from thinkserve.service.generation import GenerationService, Runtime
from thinkserve.thinking.chat_format import ChatFormat


async def measure(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="flow-cost-"))
    config = work / "thinkserve.toml"
    config.write_text('[engines.default]\nkind = "fake"\n')
    settings = load_settings(config)
    engine = FakeEngine(answer="x" * args.tokens)
    service = GenerationService(settings.models, {"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    body = orjson.dumps(
        {"model": "qwen-plus", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4096}
    )
    checked = service.check(OpenAIDialect().parse(body, Headers({})).chat)
    platform = PlatformSettings(data_dir=work, limits={"*": Limits(rpm=10**8, tpm=10**11)})
    metrics = Metrics()
    gate = await StoredKeys.start(platform, observer=metrics)
    secret = "sk-" + "f" * 48
    await gate.store.add_key(keys.from_secret(secret, "bench"))
    observed = ObservedGate(gate, metrics)
    flow = RequestFlow(service, observed)
    principal = await observed.authenticate(f"Bearer {secret}", None)

    async def stream() -> None:
        async for _ in service.stream(service.render(checked)):
            pass

    async def whole() -> None:
        running = await flow.begin(principal, checked)
        await running.collect()

    async def rounds(name: str, once: Callable[[], Awaitable[None]]) -> None:
        for _ in range(100):
            await once()
        costs = []
        for _ in range(args.rounds):
            start = time.thread_time()
            for _ in range(args.requests):
                await once()
            costs.append((time.thread_time() - start) / args.requests * 1e6)
        print(f"{name:18} min {min(costs):7.1f} us   median {statistics.median(costs):7.1f} us")

    try:
        await rounds("render + stream", stream)
        await rounds("begin + collect", whole)
    finally:
        await gate.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=64)
    uvloop.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
