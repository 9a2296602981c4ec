"""The remote engine over scripted upstreams: routing, the budget split, failover, ejection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from tests.remote.scripted import Script, ScriptTokenizer, script_vocab, serving, settings
from thinkserve.core.errors import EngineFailure, InvalidParameter
from thinkserve.core.types import SamplingParams
from thinkserve.engine.protocol import (
    Checkpoint,
    EngineEvent,
    EngineFinished,
    EngineRequest,
    Paused,
    TokenEvent,
)
from thinkserve.engine.remote.affinity import BLOCK, PrefixIndex
from thinkserve.engine.remote.engine import RemoteEngine
from thinkserve.engine.remote.sequence import NoUpstream, RemoteSequence

T = TypeVar("T")
A, B = "http://a.test", "http://b.test"
GREEDY = SamplingParams(temperature=0.0)


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(factory(), 30)

    return asyncio.run(bounded())


@asynccontextmanager
async def pool(scripts: dict[str, Script], **changes: Any) -> AsyncIterator[RemoteEngine]:
    vocab = script_vocab()
    tokenizer = vocab.tokenizer
    assert isinstance(tokenizer, ScriptTokenizer)
    changes.setdefault("health_interval", 3600.0)  # the tests call check_all themselves
    async with serving(scripts, tokenizer) as resolver:
        engine = RemoteEngine(settings(*scripts, **changes), vocab, resolver=resolver)
        await engine.start()
        try:
            yield engine
        finally:
            await engine.aclose()


def prompt(engine: RemoteEngine, user: str) -> list[int]:
    text = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return engine.tokenizer.encode(text)


def request(tokens: list[int], max_tokens: int = 200, checkpoint: Checkpoint | None = None) -> EngineRequest:
    return EngineRequest("r", tokens, GREEDY, max_tokens, checkpoint)


async def drain(sequence: RemoteSequence, inject: list[int] | None = None) -> list[EngineEvent]:
    events: list[EngineEvent] = []
    while True:
        async for event in sequence:
            events.append(event)
            if isinstance(event, Paused):
                sequence.resume(inject or [])
        if events and isinstance(events[-1], EngineFinished):
            return events


def sampled_text(engine: RemoteEngine, events: list[EngineEvent]) -> str:
    return engine.tokenizer.decode([e.token for e in events if isinstance(e, TokenEvent) and not e.injected])


def test_a_reply_streams_and_the_end_token_is_neither_emitted_nor_counted() -> None:
    async def body() -> None:
        async with pool({A: Script()}) as engine:
            events = await drain(engine.submit(request(prompt(engine, "12+7?"))))
            text = sampled_text(engine, events)
            assert text.endswith("The answer is 19.") and "<|im_end|>" not in text
            done = events[-1]
            assert isinstance(done, EngineFinished) and done.reason == "stop"
            assert done.sampled_tokens == sum(isinstance(e, TokenEvent) for e in events)

    run(body)


def test_the_budget_stops_the_upstream_exactly_and_the_continuation_resends_everything() -> None:
    async def body() -> None:
        script = Script()
        async with pool({A: script}) as engine:
            end = engine.tokenizer.token_id("</think>")
            tokens = prompt(engine, "12+7?")
            early = engine.tokenizer.encode("\n\nStop now.\n</think>\n\n")
            sequence = engine.submit(request(tokens, checkpoint=Checkpoint(limit=10, until_token=end)))
            events = await drain(sequence, early)
            paused = [i for i, e in enumerate(events) if isinstance(e, Paused)]
            assert len(paused) == 1
            before = [e for e in events[: paused[0]] if isinstance(e, TokenEvent)]
            assert len(before) == 10  # the budget, exactly
            assert script.requests[0]["max_tokens"] == 10
            # The continuation sends prompt + the 10 sampled tokens + the injected ones.
            second = script.requests[1]["prompt"]
            assert second == tokens + [e.token for e in before] + early
            assert sampled_text(engine, events).endswith("The answer is 19.")
            done = events[-1]
            assert isinstance(done, EngineFinished)
            assert done.sampled_tokens == len(before) + len("The answer is 19.")

    run(body)


def test_a_marker_before_the_budget_disarms_and_the_next_completion_goes_on() -> None:
    async def body() -> None:
        script = Script()
        async with pool({A: script}) as engine:
            end = engine.tokenizer.token_id("</think>")
            sequence = engine.submit(
                request(prompt(engine, "q"), checkpoint=Checkpoint(limit=45, until_token=end))
            )
            events = await drain(sequence)
            assert not any(isinstance(e, Paused) for e in events)
            assert [r["max_tokens"] for r in script.requests] == [45, 200 - 45]
            assert sampled_text(engine, events) == script.reply.removesuffix("<|im_end|>")

    run(body)


def test_max_tokens_ends_with_length() -> None:
    async def body() -> None:
        async with pool({A: Script()}) as engine:
            events = await drain(engine.submit(request(prompt(engine, "q"), max_tokens=5)))
            done = events[-1]
            assert isinstance(done, EngineFinished) and (done.reason, done.sampled_tokens) == ("length", 5)

    run(body)


def test_cached_tokens_come_from_the_upstream() -> None:
    async def body() -> None:
        async with pool({A: Script()}) as engine:
            tokens = prompt(engine, "q")
            await drain(engine.submit(request(tokens)))
            events = await drain(engine.submit(request(tokens)))
            done = events[-1]
            assert isinstance(done, EngineFinished) and done.cached_tokens == len(tokens)

    run(body)


def test_a_refused_connection_fails_over_and_ejects() -> None:
    async def body() -> None:
        scripts = {A: Script(), B: Script()}
        async with pool(scripts) as engine:
            a = engine.pool.upstreams[0]
            scripts[A].down = True
            for i in range(4):
                events = await drain(engine.submit(request(prompt(engine, f"question {i}"))))
                assert isinstance(events[-1], EngineFinished)
            assert a.state == "ejected" and a.counters.ejections == 1 and a.counters.failovers == 1
            assert len(scripts[B].requests) == 4
            assert engine.health().state == "up"
            # Back once a probe succeeds after its time out.
            scripts[A].down = False
            a.ejected_until = 0.0
            await engine.pool.check_all()
            assert a.state == "up" and a.counters.returns == 1

    run(body)


def test_server_errors_fail_over_and_eject_after_a_streak() -> None:
    async def body() -> None:
        scripts = {A: Script(status=500), B: Script()}
        async with pool(scripts, eject_after=2) as engine:
            a, _ = engine.pool.upstreams
            for i in range(6):
                await drain(engine.submit(request(prompt(engine, f"q{i}"))))
            assert a.counters.errors == {"status": 2} and a.state == "ejected"

    run(body)


def test_a_stream_cut_after_tokens_is_the_callers_error() -> None:
    async def body() -> None:
        scripts = {A: Script(break_after=3)}
        async with pool(scripts) as engine:
            sequence = engine.submit(request(prompt(engine, "q")))
            events: list[EngineEvent] = []
            with pytest.raises(EngineFailure, match="upstream engine server failed"):
                async for event in sequence:
                    events.append(event)
            assert len(events) == 3  # the tokens it did send were delivered
            assert len(scripts[A].requests) == 1  # and not sent again elsewhere

    run(body)


def test_a_stream_cut_before_any_token_fails_over() -> None:
    async def body() -> None:
        scripts = {A: Script(break_after=0), B: Script()}
        async with pool(scripts) as engine:
            engine.pool.upstreams[1].in_flight = 5  # make A the first choice
            events = await drain(engine.submit(request(prompt(engine, "q"))))
            assert isinstance(events[-1], EngineFinished)
            assert len(scripts[A].requests) == 1 and len(scripts[B].requests) == 1

    run(body)


def test_a_server_silent_past_read_timeout_fails_over() -> None:
    async def body() -> None:
        scripts = {A: Script(delay=5.0), B: Script()}
        async with pool(scripts, read_timeout=0.3) as engine:
            a, b = engine.pool.upstreams
            b.in_flight = 5  # make A the first choice
            events = await drain(engine.submit(request(prompt(engine, "q"))))
            assert isinstance(events[-1], EngineFinished)
            assert a.counters.errors == {"timeout": 1} and a.counters.failovers == 1
            assert len(scripts[B].requests) == 1

    run(body)


def test_no_free_connection_is_busy_and_not_counted() -> None:
    async def body() -> None:
        scripts = {A: Script(gap=0.02)}  # about 1.4 s of stream, no read waits 0.3 s
        async with pool(scripts, max_connections=1, read_timeout=0.3) as engine:
            a = engine.pool.upstreams[0]
            slow = asyncio.ensure_future(drain(engine.submit(request(prompt(engine, "first")))))
            await asyncio.sleep(0.1)  # the first holds the only connection
            with pytest.raises(NoUpstream):
                await drain(engine.submit(request(prompt(engine, "second"))))
            assert a.counters.errors == {"busy": 1} and a.failures == 0 and a.state == "up"
            assert isinstance((await slow)[-1], EngineFinished)
            assert a.counters.errors == {"busy": 1}

    run(body)


def test_no_upstream_up_is_a_503_before_anything_runs() -> None:
    async def body() -> None:
        scripts = {A: Script()}
        async with pool(scripts) as engine:
            engine.pool.upstreams[0].eject("test")
            with pytest.raises(NoUpstream):
                engine.submit(request(prompt(engine, "q")))
            assert engine.health().state == "down" and "test" in engine.health().reason

    run(body)


def test_every_upstream_failing_before_the_first_token_is_a_503() -> None:
    async def body() -> None:
        scripts = {A: Script(status=502), B: Script(status=502)}
        async with pool(scripts) as engine:
            with pytest.raises(NoUpstream):
                await drain(engine.submit(request(prompt(engine, "q"))))

    run(body)


def test_a_rejected_request_is_not_retried_elsewhere() -> None:
    async def body() -> None:
        scripts = {A: Script(status=400), B: Script(status=400)}
        async with pool(scripts) as engine:
            with pytest.raises(EngineFailure):
                await drain(engine.submit(request(prompt(engine, "q"))))
            assert len(scripts[A].requests) + len(scripts[B].requests) == 1
            assert all(u.state == "up" for u in engine.pool.upstreams)

    run(body)


def test_bad_prompts_are_the_callers_error() -> None:
    async def body() -> None:
        async with pool({A: Script(context=64)}) as engine:
            with pytest.raises(InvalidParameter, match="input length"):
                engine.submit(request([5] * 64))
            with pytest.raises(InvalidParameter, match="out of range"):
                engine.submit(request([10**9]))

    run(body)


def test_the_context_is_the_smallest_upstream_s() -> None:
    async def body() -> None:
        async with pool({A: Script(context=8192), B: Script(context=2048)}) as engine:
            assert engine.context_length == 2048
        async with pool({A: Script(context=8192)}, n_ctx=1000) as engine:
            assert engine.context_length == 1000

    run(body)


def test_least_outstanding_by_weight_then_affinity_for_the_next_turn() -> None:
    async def body() -> None:
        async with pool({A: Script(), B: Script()}) as engine:
            a, b = engine.pool.upstreams
            a.in_flight, b.in_flight = 3, 1
            conversation = prompt(engine, "a long first question " * 10)
            assert engine.pool.choose(conversation) is b
            # The next turn starts with the first: it goes where that prefix is, though A is idle now.
            a.in_flight = 0
            follow = conversation + engine.tokenizer.encode("The answer.<|im_end|>\n<|im_start|>user\nmore?")
            assert engine.pool.choose(follow) is b
            # Unless B is now far busier than A.
            b.in_flight = 40
            assert engine.pool.choose(follow) is a
            # A weight of 3 takes three times the load.
            b.in_flight = 0
            b.weight, a.in_flight = 3.0, 1
            fresh = prompt(engine, "an unrelated question " * 10)
            b.in_flight = 2
            assert engine.pool.choose(fresh) is b

    run(body)


def test_an_ejection_makes_the_prefix_stale() -> None:
    async def body() -> None:
        async with pool({A: Script(), B: Script()}) as engine:
            a, b = engine.pool.upstreams
            b.in_flight = 1
            conversation = prompt(engine, "first question " * 10)
            assert engine.pool.choose(conversation) is a
            a.eject("restarted")
            a.ejected_until = 0.0
            await engine.pool.check_all()
            a.in_flight, b.in_flight = 1, 0
            assert engine.pool.choose(conversation) is b

    run(body)


def test_prefix_index_matches_the_longest_recorded_prefix_and_forgets_the_oldest() -> None:
    index = PrefixIndex(capacity=4)
    first = list(range(3 * BLOCK + 5))
    index.record(first, 0, 1)
    assert index.match(first + [7] * BLOCK) == (0, 1, 3 * BLOCK)
    assert index.match(list(range(BLOCK - 1))) is None
    index.record(list(range(100, 100 + 2 * BLOCK)), 1, 1)
    assert len(index) == 4  # the oldest block of the first prompt is gone
    assert index.match(first) == (0, 1, 3 * BLOCK)


def test_a_token_id_outside_the_vocabulary_is_a_protocol_failure_not_a_crash() -> None:
    async def body() -> None:
        scripts = {A: Script(), B: Script()}
        async with pool(scripts) as engine:
            vocab = engine.tokenizer.n_vocab
            scripts[A].reply_ids = [vocab + 5]
            engine.pool.upstreams[1].in_flight = 5  # make A the first choice
            events = await drain(engine.submit(request(prompt(engine, "q"))))
            assert isinstance(events[-1], EngineFinished)  # failed over to B before any token
            assert engine.pool.upstreams[0].counters.errors == {"protocol": 1}

    run(body)
