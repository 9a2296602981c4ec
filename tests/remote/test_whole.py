"""Whole completions: a caller that takes every token at the end gets short completions as one
response instead of a stream, with the same tokens, the same budget, failover and counted usage."""

from __future__ import annotations

import asyncio

from tests.remote.scripted import Script
from tests.remote.test_pool import GREEDY, A, B, drain, pool, prompt, run, sampled_text
from thinkserve.engine.protocol import Checkpoint, EngineFinished, EngineRequest, Paused, TokenEvent


def whole(tokens: list[int], max_tokens: int = 200, checkpoint: Checkpoint | None = None) -> EngineRequest:
    return EngineRequest("r", tokens, GREEDY, max_tokens, checkpoint, whole=True)


def test_a_whole_request_is_one_response_with_the_streamed_tokens() -> None:
    async def body() -> None:
        script = Script()
        async with pool({A: script}) as engine:
            tokens = prompt(engine, "12+7?")
            streamed = await drain(engine.submit(EngineRequest("s", tokens, GREEDY, 200)))
            assert script.wholes == 0 and script.requests[0]["stream"] is True
            events = await drain(engine.submit(whole(tokens)))
            assert script.wholes == 1
            assert script.requests[1]["stream"] is False and "stream_options" not in script.requests[1]
            assert events[:-1] == streamed[:-1]  # the same tokens and texts
            done = events[-1]
            assert isinstance(done, EngineFinished) and done.cached_tokens == len(tokens)  # the 2nd time
            assert done == EngineFinished("stop", len(tokens), len(tokens), len(events) - 1)
            upstream = engine.pool.upstreams[0]
            assert sum(upstream.counters.first_token.counts) == 1  # only the streamed one has one

    run(body)


def test_a_completion_longer_than_whole_max_tokens_streams() -> None:
    async def body() -> None:
        script = Script()
        async with pool({A: script}, whole_max_tokens=100) as engine:
            events = await drain(engine.submit(whole(prompt(engine, "q"), max_tokens=101)))
            assert script.wholes == 0 and isinstance(events[-1], EngineFinished)
            await drain(engine.submit(whole(prompt(engine, "q"), max_tokens=100)))
            assert script.wholes == 1

    run(body)


def test_the_budget_splits_whole_completions_exactly() -> None:
    async def body() -> None:
        script = Script()
        async with pool({A: script}) as engine:
            end = engine.tokenizer.token_id("</think>")
            tokens = prompt(engine, "12+7?")
            early = engine.tokenizer.encode("\n\nStop now.\n</think>\n\n")
            sequence = engine.submit(whole(tokens, checkpoint=Checkpoint(limit=10, until_token=end)))
            events = await drain(sequence, early)
            paused = [i for i, e in enumerate(events) if isinstance(e, Paused)]
            before = [e for e in events[: paused[0]] if isinstance(e, TokenEvent)]
            assert len(paused) == 1 and len(before) == 10
            assert script.wholes == 2 and script.requests[0]["max_tokens"] == 10
            assert script.requests[1]["prompt"] == tokens + [e.token for e in before] + early
            assert sampled_text(engine, events).endswith("The answer is 19.")

    run(body)


def test_a_whole_completion_that_breaks_fails_over() -> None:
    async def body() -> None:
        scripts = {A: Script(break_after=0), B: Script()}
        async with pool(scripts) as engine:
            engine.pool.upstreams[1].in_flight = 5  # make A the first choice
            events = await drain(engine.submit(whole(prompt(engine, "q"))))
            assert isinstance(events[-1], EngineFinished) and events[-1].reason == "stop"
            assert (scripts[A].wholes, scripts[B].wholes) == (1, 1)
            assert engine.pool.upstreams[0].counters.failovers == 1

    run(body)


def test_a_cancel_waits_for_the_whole_completion_and_settle_counts_every_token() -> None:
    async def body() -> None:
        script = Script(delay=0.3)
        async with pool({A: script}) as engine:
            sequence = engine.submit(whole(prompt(engine, "q"), max_tokens=12))
            await asyncio.sleep(0.1)  # the completion is on its way
            left = await sequence.settle(10.0)
            tokens = [e for e in left if isinstance(e, TokenEvent)]
            done = left[-1]
            assert len(tokens) == 12 and isinstance(done, EngineFinished)
            assert (done.reason, done.sampled_tokens) == ("cancelled", 12)
            assert script.wholes == 1 and len(script.requests) == 1  # not sent anywhere again
            assert engine.snapshot().active_sequences == 0

    run(body)


def test_a_cancel_of_a_whole_completion_that_then_fails_ends_without_failover() -> None:
    async def body() -> None:
        scripts = {A: Script(delay=0.3, break_after=0), B: Script()}
        async with pool(scripts) as engine:
            engine.pool.upstreams[1].in_flight = 5  # make A the first choice
            sequence = engine.submit(whole(prompt(engine, "q")))
            await asyncio.sleep(0.1)
            left = await sequence.settle(10.0)
            assert left == [EngineFinished("cancelled", len(prompt(engine, "q")), 0, 0)]
            assert scripts[B].requests == []

    run(body)


def test_sequences_cancelled_before_their_task_ran_are_ended_and_answered() -> None:
    """Submitted and cancelled in one step (a client gone before its sequence started): their tasks
    never run, and still each is counted out and answers the cancel, at once."""

    async def body() -> None:
        script = Script()
        async with pool({A: script}) as engine:
            tokens = prompt(engine, "q")
            sequences = [engine.submit(EngineRequest(f"c{i}", tokens, GREEDY, 50)) for i in range(4)]
            for sequence in sequences:
                sequence.cancel()
            settled = await asyncio.wait_for(asyncio.gather(*(s.settle(5.0) for s in sequences)), 2.0)
            assert [events[-1] for events in settled] == [EngineFinished("cancelled", len(tokens), 0, 0)] * 4
            assert engine.snapshot().active_sequences == 0 and script.requests == []
            # The engine takes the next request as if nothing happened.
            done = (await drain(engine.submit(EngineRequest("n", tokens, GREEDY, 50))))[-1]
            assert done == EngineFinished("length", len(tokens), 0, 50)  # the first prompt it saw

    run(body)
