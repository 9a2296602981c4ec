"""``thinkserve serve`` sets the garbage collector for serving once its app has started (what
startup built is frozen; the youngest generation is collected less often); an app built without
``tune_gc`` (tests, the embedded chat) leaves the process's collector alone. In a child process:
the settings are process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, sys, tempfile
    from pathlib import Path
    from thinkserve.app import create_app
    from thinkserve.config import Settings
    from thinkserve.engine.fake.engine import FakeEngine
    from thinkserve.service.generation import Runtime
    from thinkserve.thinking.chat_format import ChatFormat

    async def main(tune):
        engine = FakeEngine()
        settings = Settings(api_keys=("sk-test",), data_dir=Path(tempfile.mkdtemp()) / "data")
        runtimes = {"default": Runtime(engine, ChatFormat(engine.tokenizer))}
        app = create_app(settings, runtimes=runtimes, tune_gc=tune)
        before = (gc.get_threshold()[0], gc.get_freeze_count())
        async with app.router.lifespan_context(app):
            during = (gc.get_threshold()[0], gc.get_freeze_count())
        print(json.dumps([before, during]))

    asyncio.run(main(sys.argv[1] == "tune"))
    """
)


def _thresholds(mode: str) -> list[list[int]]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    result: list[list[int]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_serve_freezes_startup_and_collects_the_young_less_often() -> None:
    (young_before, frozen_before), (young, frozen) = _thresholds("tune")
    assert (young_before, frozen_before) == (700, 0)
    assert young == 10_000 and frozen > 10_000


def test_an_app_without_tune_gc_leaves_the_collector_alone() -> None:
    (young_before, frozen_before), (young, frozen) = _thresholds("plain")
    assert (young, frozen) == (young_before, frozen_before) == (700, 0)
