"""The engine in its own supervised process: same events as in-process, and a crash of the engine
process fails only what was in flight, is reported by health() and is followed by a restart."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engine.test_llamacpp import GREEDY, run
from thinkserve.core.errors import EngineFailure, InvalidParameter, Overloaded
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.engine.fake.tokenizer import FakeTokenizer
from thinkserve.engine.llamacpp.settings import LlamaCppSettings
from thinkserve.engine.protocol import (
    Checkpoint,
    EngineEvent,
    EngineFinished,
    EngineRequest,
    Paused,
    TokenEvent,
)
from thinkserve.engine.supervised.supervisor import EngineUnavailable, SupervisedEngine, kill
from thinkserve.engine.supervised.wire import Start


def fake_engine(**script: Any) -> SupervisedEngine:
    return SupervisedEngine("fake", Start("fake", script, "fake", "/tmp"), FakeTokenizer(), backoff=(0.2,))


def prompt(text: str = "hi") -> list[int]:
    return FakeTokenizer().encode(f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n")


async def drain(engine: Any, request: EngineRequest) -> list[EngineEvent]:
    return [event async for event in engine.submit(request)]


async def wait_up(engine: SupervisedEngine, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while engine.health().state != "up":
        assert time.monotonic() < deadline, engine.health()
        await asyncio.sleep(0.05)


def test_events_match_the_engine_run_in_process() -> None:
    async def body() -> None:
        request = EngineRequest("r", prompt(), GREEDY, 200)
        local = await drain(FakeEngine(), request)
        engine = fake_engine()
        await engine.start()
        try:
            remote = await drain(engine, request)
            assert engine.health().state == "up"
            assert engine.stats is not None and engine.stats.sampled_tokens == len(remote) - 1
        finally:
            await engine.aclose()
        assert remote == local
        assert isinstance(remote[-1], EngineFinished) and remote[-1].reason == "stop"
        assert engine.health().state == "stopped"

    run(body)


def test_pause_and_resume_cross_the_process_boundary() -> None:
    async def body() -> None:
        tok = FakeTokenizer()
        engine = fake_engine()
        await engine.start()
        try:
            checkpoint = Checkpoint(limit=5, until_token=tok.token_id("</think>"))
            seq = engine.submit(EngineRequest("r", prompt(), GREEDY, 200, checkpoint))
            first = [event async for event in seq]
            assert isinstance(first[-1], Paused)
            assert len([e for e in first if isinstance(e, TokenEvent)]) == 5
            injected = tok.encode("\n</think>\n\n")
            seq.resume(injected)
            rest = [event async for event in seq]
            assert [e.token for e in rest if isinstance(e, TokenEvent) and e.injected] == injected
            assert isinstance(rest[-1], EngineFinished)
        finally:
            await engine.aclose()

    run(body)


def test_errors_of_the_engine_process_reach_the_caller() -> None:
    async def body() -> None:
        engine = fake_engine(max_queue=0, context_length=64)
        await engine.start()
        try:
            with pytest.raises(InvalidParameter, match=r"Range of input length should be \[1, 64\]"):
                engine.submit(EngineRequest("r", list(range(100, 200)), GREEDY, 10))
            with pytest.raises(InvalidParameter, match="Token id out of range"):
                engine.submit(EngineRequest("r", [-1], GREEDY, 10))
            # Raised by the engine in its own process, delivered as the stream's first item.
            with pytest.raises(Overloaded):
                await drain(engine, EngineRequest("r", prompt(), GREEDY, 10))
        finally:
            await engine.aclose()

    run(body)


def test_a_killed_engine_process_fails_in_flight_work_reports_down_and_restarts() -> None:
    async def body() -> None:
        engine = fake_engine(delay=0.02)
        await engine.start()
        try:
            first_pid = engine.pid
            seq = engine.submit(EngineRequest("r", prompt(), GREEDY, 500))
            seen = 0
            with pytest.raises(EngineFailure, match="killed by SIGKILL") as caught:
                async for _event in seq:
                    seen += 1
                    if seen == 3:
                        kill(engine, signal.SIGKILL)
            assert type(caught.value) is EngineFailure
            health = engine.health()
            assert health.state == "down" and "SIGKILL" in health.reason
            with pytest.raises(EngineUnavailable, match="SIGKILL"):
                engine.submit(EngineRequest("r2", prompt(), GREEDY, 5))
            await wait_up(engine)
            assert engine.health().restarts == 1 and engine.pid != first_pid
            events = await drain(engine, EngineRequest("r3", prompt(), GREEDY, 5))
            assert isinstance(events[-1], EngineFinished) and events[-1].sampled_tokens == 5
        finally:
            await engine.aclose()

    run(body)


def test_an_engine_that_cannot_load_says_why() -> None:
    async def body() -> None:
        spec = LlamaCppSettings("broken", model="/nonexistent.gguf")
        engine = SupervisedEngine(
            "broken", Start("llamacpp", spec, "/nonexistent.gguf", "/tmp"), FakeTokenizer()
        )
        with pytest.raises(EngineFailure, match="exited with status 1 while loading the model"):
            await engine.start()
        assert engine.health().state == "down"

    run(body)


def real_engine(model: Path, data: Path, hang_timeout: float = 60.0) -> SupervisedEngine:
    """The tiny real model in a supervised engine process (not started)."""
    from thinkserve.engine.llamacpp.tokenizer import VocabFile

    spec = LlamaCppSettings("default", model=str(model), n_ctx=2048, n_seq=2)
    vocab = VocabFile(str(model))
    return SupervisedEngine(
        "default",
        Start("llamacpp", spec, str(model), str(data)),
        vocab.tokenizer,
        close_tokenizer=vocab.close,
        backoff=(0.1,),
        hang_timeout=hang_timeout,
    )


@pytest.mark.slow
def test_the_real_engine_in_its_own_process(tmp_path: Path) -> None:
    from tests.engine.conftest import engine_model
    from thinkserve.engine.llamacpp.engine import LlamaCppEngine

    model = engine_model()

    async def body() -> None:
        engine = real_engine(model, tmp_path)
        await engine.start()
        local = LlamaCppEngine(str(model), n_ctx=2048, n_seq=2, proof_dir=tmp_path)
        await asyncio.to_thread(local.start)
        try:
            text = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
            tokens = engine.tokenizer.encode(text)
            assert tokens == local.tokenizer.encode(text)
            request = EngineRequest("r", tokens, GREEDY, 24)
            remote = await drain(engine, request)
            expected = await drain(local, request)
            assert [e for e in remote if isinstance(e, TokenEvent)] == [
                e for e in expected if isinstance(e, TokenEvent)
            ]
            assert "backend" in engine.health().reason
            kill(engine, signal.SIGKILL)
            await asyncio.sleep(0.2)
            await wait_up(engine)
            again = await drain(engine, request)
            assert [e for e in again if isinstance(e, TokenEvent)] == [
                e for e in expected if isinstance(e, TokenEvent)
            ]
        finally:
            await engine.aclose()
            await local.aclose()

    run(body, timeout=300)


def stop_mid_stream(engine: SupervisedEngine, seq: Any, after: int) -> Any:
    """Iterate ``seq``; after ``after`` token events, SIGSTOP the engine process (it hangs
    without dying). Returns the coroutine that iterates to the error the watchdog causes."""

    async def go() -> tuple[int, float]:
        seen = 0
        stopped = 0.0
        async for event in seq:
            if isinstance(event, TokenEvent):
                seen += 1
                if seen == after:
                    kill(engine, signal.SIGSTOP)
                    stopped = time.monotonic()
        return seen, stopped

    return go()


def test_a_hung_engine_process_is_killed_by_the_watchdog_and_restarted() -> None:
    async def body() -> None:
        engine = SupervisedEngine(
            "fake",
            Start("fake", {"delay": 0.02}, "fake", "/tmp"),
            FakeTokenizer(),
            backoff=(0.2,),
            hang_timeout=1.0,
        )
        await engine.start()
        try:
            first_pid = engine.pid
            seq = engine.submit(EngineRequest("r", prompt(), GREEDY, 500))
            with pytest.raises(EngineFailure, match="stopped answering") as caught:
                await stop_mid_stream(engine, seq, 3)
            assert "killed" in caught.value.message
            health = engine.health()
            assert health.state == "down" and "stopped answering" in health.reason, health
            await wait_up(engine)
            assert engine.pid != first_pid
            events = await drain(engine, EngineRequest("r2", prompt(), GREEDY, 5))
            assert isinstance(events[-1], EngineFinished) and events[-1].sampled_tokens == 5
            # Idle for longer than the limit is no hang: heartbeats keep coming.
            await asyncio.sleep(2.5)
            assert engine.health().state == "up" and engine.health().restarts == 1
        finally:
            await engine.aclose()

    run(body)


def test_a_cancelled_sequence_hands_over_what_the_engine_sampled_meanwhile() -> None:
    async def body() -> None:
        engine = fake_engine(delay=0.01)
        await engine.start()
        try:
            seq = engine.submit(EngineRequest("r", prompt(), GREEDY, 500))
            seen = 0
            async for event in seq:
                if isinstance(event, TokenEvent):
                    seen += 1
                    if seen == 3:
                        break
            await asyncio.sleep(0.1)  # the engine goes on sampling until the cancel lands
            left = await seq.settle(5.0)
            assert isinstance(left[-1], EngineFinished) and left[-1].reason == "cancelled"
            tokens = [e for e in left if isinstance(e, TokenEvent)]
            assert tokens, "nothing was on its way"
            await asyncio.sleep(0.3)
            assert engine.stats is not None
            assert engine.stats.sampled_tokens == seen + len(tokens)
        finally:
            await engine.aclose()

    run(body)


@pytest.mark.slow
def test_the_watchdog_restarts_a_hung_real_engine(tmp_path: Path) -> None:
    from tests.engine.conftest import engine_model

    model = engine_model()

    async def body() -> None:
        # A generous limit: on a loaded 2-core machine a step can take seconds.
        engine = real_engine(model, tmp_path, hang_timeout=5.0)
        await engine.start()
        try:
            tokens = engine.tokenizer.encode("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n")
            seq = engine.submit(EngineRequest("r", tokens, GREEDY, 1000))
            with pytest.raises(EngineFailure, match="stopped answering"):
                await stop_mid_stream(engine, seq, 2)
            await wait_up(engine)
            again = await drain(engine, EngineRequest("r2", tokens, GREEDY, 8))
            assert isinstance(again[-1], EngineFinished) and again[-1].sampled_tokens == 8
        finally:
            await engine.aclose()

    run(body, timeout=300)
