"""LlamaCppEngine on a real (tiny) model: streaming, batching, pause/resume, cache reuse, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkserve.core.errors import EngineFailure, InvalidParameter, Overloaded
from thinkserve.core.types import SamplingParams
from thinkserve.engine.checkpoint import CheckpointState, marker_seen
from thinkserve.engine.llamacpp.engine import LlamaCppEngine, LlamaCppSequence
from thinkserve.engine.llamacpp.slots import common_prefix
from thinkserve.engine.llamacpp.tokenizer import StreamDecoder
from thinkserve.engine.protocol import (
    Checkpoint,
    EngineEvent,
    EngineFinished,
    EngineRequest,
    Paused,
    TokenEvent,
)

slow = pytest.mark.slow

T = TypeVar("T")
GREEDY = SamplingParams(temperature=0.0)


def run(factory: Callable[[], Awaitable[T]], timeout: float = 120) -> T:
    """Run one async test body on a fresh loop; a hang fails the test instead of blocking it."""

    async def bounded() -> T:
        return await asyncio.wait_for(factory(), timeout)

    return asyncio.run(bounded())


def chat(engine: LlamaCppEngine, user: str, *, system: str = "You are a helpful assistant.") -> list[int]:
    text = (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
    return engine.tokenizer.encode(text)


def request(
    prompt: Sequence[int],
    max_tokens: int,
    *,
    sampling: SamplingParams = GREEDY,
    checkpoint: Checkpoint | None = None,
    rid: str = "r",
) -> EngineRequest:
    return EngineRequest(rid, list(prompt), sampling, max_tokens, checkpoint)


async def collect(seq: LlamaCppSequence) -> list[EngineEvent]:
    return [event async for event in seq]


def tokens_of(events: Sequence[EngineEvent], *, injected: bool | None = None) -> list[int]:
    return [
        e.token for e in events if isinstance(e, TokenEvent) and (injected is None or e.injected == injected)
    ]


def text_of(events: Sequence[EngineEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenEvent))


def finished(events: Sequence[EngineEvent]) -> EngineFinished:
    last = events[-1]
    assert isinstance(last, EngineFinished), last
    return last


def stop_prompt(engine: LlamaCppEngine) -> list[int]:
    """A greeting with thinking off: the greedy answer is a short "Hello!" then <|im_end|>."""
    return engine.tokenizer.encode(
        "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


# -- tokenizer --------------------------------------------------------------------------------


@slow
def test_tokenizer(engine: LlamaCppEngine, model_path: Path) -> None:
    tok = engine.tokenizer
    assert tok.chat_template and "im_start" in tok.chat_template
    assert tok.eos_token == "<|im_end|>" or tok.eos_token
    im_start = tok.token_id("<|im_start|>")
    assert im_start is not None
    assert tok.encode("<|im_start|>") == [im_start]
    assert len(tok.encode("<|im_start|>", special=False)) > 1
    assert tok.token_id("hello there, friend") is None
    text = "Hello, 世界! <|im_start|>user\n思考一下 🤖"
    assert tok.decode(tok.encode(text)) == text
    if tok.token_id("<think>") is not None:  # Qwen3 vocabularies
        assert tok.token_id("<think>") == 151667
        assert tok.token_id("</think>") == 151668
        assert tok.decode([151667]) == "<think>"


@slow
def test_stream_decoder_holds_back_partial_characters(engine: LlamaCppEngine) -> None:
    tok = engine.tokenizer
    text = "龘🤖𝄞 中文テキスト"
    ids = tok.encode(text)
    decoder = StreamDecoder(tok)
    parts = [decoder.feed(t) for t in ids]
    assert "".join(parts) == text
    assert all("\ufffd" not in p for p in parts)
    # Rare characters span several byte-level tokens: their first tokens yield "".
    assert "" in parts


# -- streaming and finish reasons ---------------------------------------------------------------


@slow
def test_streams_tokens_and_stops_at_max_tokens(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Write a long story about a dragon.")

    async def body() -> list[EngineEvent]:
        return await collect(engine.submit(request(prompt, 12)))

    events = run(body)
    assert all(isinstance(e, TokenEvent) and not e.injected for e in events[:-1])
    assert len(events) == 13
    end = finished(events)
    assert end == EngineFinished(
        "length", prompt_tokens=len(prompt), cached_tokens=end.cached_tokens, sampled_tokens=12
    )
    assert text_of(events) == engine.tokenizer.decode(tokens_of(events))


@slow
def test_stops_at_end_of_generation(engine: LlamaCppEngine) -> None:
    prompt = stop_prompt(engine)

    async def body() -> list[EngineEvent]:
        return await collect(engine.submit(request(prompt, 40)))

    events = run(body)
    end = finished(events)
    assert end.reason == "stop"
    assert end.sampled_tokens == len(tokens_of(events)) < 40
    assert "<|im_end|>" not in text_of(events)


@slow
def test_on_end_checkpoint_pauses_instead_of_stopping(engine: LlamaCppEngine) -> None:
    prompt = stop_prompt(engine)

    async def body() -> tuple[list[EngineEvent], list[EngineEvent], list[EngineEvent]]:
        await collect(engine.submit(request(prompt, 1)))  # cached from here on, as below
        plain = await collect(engine.submit(request(prompt, 60)))
        limit = finished(plain).sampled_tokens + 10  # the end comes while the checkpoint is armed
        seq = engine.submit(request(prompt, 60, checkpoint=Checkpoint(limit=limit, on_end=True)))
        first = await collect(seq)
        seq.resume([])
        return plain, first, await collect(seq)

    plain, first, rest = run(body)
    assert finished(plain).reason == "stop"
    assert first[-1] == Paused(at_end=True)
    # The end-of-generation token was dropped, not emitted.
    assert tokens_of(first) == tokens_of(plain)
    # Resumed with nothing: the model samples the end again; the checkpoint is spent, so it stops.
    end = finished(rest)
    assert end.reason == "stop"
    assert end.sampled_tokens == len(tokens_of(plain)) + len(tokens_of(rest))


@slow
def test_sampling_with_seed_is_reproducible(model_path: Path) -> None:
    # Two fresh engines: in one engine the second run would reuse the first one's KV cells,
    # whose rounding differs slightly from a full prefill and can flip a random draw.
    sampling = SamplingParams(temperature=0.9, top_p=0.9, top_k=40, seed=1234, repetition_penalty=1.1)
    runs: list[list[int]] = []
    for _ in range(2):
        eng = LlamaCppEngine(str(model_path), n_ctx=512, n_seq=1, n_batch=64)
        eng.start()
        try:
            prompt = chat(eng, "Tell me a joke.")

            async def body(eng: LlamaCppEngine = eng, prompt: list[int] = prompt) -> list[int]:
                return tokens_of(await collect(eng.submit(request(prompt, 10, sampling=sampling))))

            runs.append(run(body))
        finally:
            eng.close()
    assert runs[0] == runs[1]
    assert len(runs[0]) >= 1


# -- budget forcing: pause, inject, continue on the same KV ------------------------------------


@slow
def test_checkpoint_pauses_and_resume_does_not_reevaluate_the_prompt(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Explain in detail how a bicycle works. " * 8)
    injected = engine.tokenizer.encode("\n\nConsidering the limited time, I have to answer now.\n")

    async def body() -> tuple[list[EngineEvent], list[EngineEvent], tuple[int, int, int]]:
        seq = engine.submit(request(prompt, 20, checkpoint=Checkpoint(limit=6)))
        head: list[EngineEvent] = []
        async for event in seq:
            head.append(event)
        before = engine.stats
        seq.resume(injected)
        tail = await collect(seq)
        after = engine.stats
        return (
            head,
            tail,
            (
                after.prompt_tokens_evaluated - before.prompt_tokens_evaluated,
                after.generated_tokens_evaluated - before.generated_tokens_evaluated,
                after.injected_tokens - before.injected_tokens,
            ),
        )

    head, tail, (prompt_delta, generated_delta, injected_delta) = run(body)
    assert head[-1] == Paused()
    assert len(tokens_of(head)) == 6
    assert tokens_of(tail, injected=True) == injected
    assert "".join(
        e.text for e in tail if isinstance(e, TokenEvent) and e.injected
    ) == engine.tokenizer.decode(injected)
    # Injected tokens come first, then sampling goes on (injected ones do not count).
    sampled_after = tokens_of(tail, injected=False)
    assert all(e.injected for e in tail[: len(injected)] if isinstance(e, TokenEvent))
    end = finished(tail)
    assert end.sampled_tokens == 6 + len(sampled_after)
    assert end.reason == "stop" or end.sampled_tokens == 20
    # The prompt was not evaluated again: only the token sampled before the pause, the injected
    # tokens and the new samples went through llama_decode (a final "length" sample is not fed).
    assert prompt_delta == 0
    assert injected_delta == len(injected)
    fed_back = len(sampled_after) - (1 if end.reason == "length" else 0)
    assert generated_delta == 1 + len(injected) + fed_back


@slow
def test_resume_inside_the_loop_keeps_iterating(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Count from one to twenty.")
    close = engine.tokenizer.encode("\nOK.\n")

    async def body() -> list[EngineEvent]:
        seq = engine.submit(request(prompt, 8, checkpoint=Checkpoint(limit=3)))
        events: list[EngineEvent] = []
        async for event in seq:
            events.append(event)
            if isinstance(event, Paused):
                seq.resume(close)
        return events

    events = run(body)
    assert sum(isinstance(e, Paused) for e in events) == 1
    assert tokens_of(events, injected=True) == close
    end = finished(events)
    assert end.sampled_tokens == len(tokens_of(events, injected=False))
    assert end.reason == "stop" or end.sampled_tokens == 8


@slow
def test_marker_disarms_the_checkpoint(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Say something.")

    async def body() -> tuple[list[EngineEvent], list[EngineEvent], list[EngineEvent]]:
        # The reference run goes the same way as the two below: the prompt is cached by then, and
        # only its last token is evaluated (a full prefill could round differently).
        await collect(engine.submit(request(prompt, 1)))
        plain = await collect(engine.submit(request(prompt, 6)))
        marker = tokens_of(plain)[1]
        by_token = await collect(
            engine.submit(request(prompt, 6, checkpoint=Checkpoint(3, until_token=marker)))
        )
        text = next(e.text for e in plain[1:] if isinstance(e, TokenEvent) and e.text.strip())
        by_text = await collect(engine.submit(request(prompt, 6, checkpoint=Checkpoint(3, until_text=text))))
        return plain, by_token, by_text

    plain, by_token, by_text = run(body)
    for events in (by_token, by_text):
        assert not any(isinstance(e, Paused) for e in events)
        assert tokens_of(events) == tokens_of(plain)


@slow
def test_zero_limit_pauses_before_the_first_token(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Hello!")

    async def body() -> tuple[list[EngineEvent], list[EngineEvent], list[EngineEvent]]:
        await collect(engine.submit(request(prompt, 1)))  # cached from here on, as below
        plain = await collect(engine.submit(request(prompt, 4)))
        seq = engine.submit(request(prompt, 4, checkpoint=Checkpoint(limit=0)))
        head = await collect(seq)
        seq.resume([])
        return plain, head, await collect(seq)

    plain, head, tail = run(body)
    assert head == [Paused()]
    assert tokens_of(tail) == tokens_of(plain)


# -- continuous batching ------------------------------------------------------------------------


@slow
def test_concurrent_streams_share_decode_calls(engine: LlamaCppEngine) -> None:
    topics = ["the sea", "mountains", "a city at night", "an old library"]
    prompts = [chat(engine, f"Write a poem about {t}.") for t in topics]

    async def body() -> list[list[EngineEvent]]:
        seqs = [engine.submit(request(p, 24, rid=f"c{i}")) for i, p in enumerate(prompts)]
        return list(await asyncio.gather(*(collect(s) for s in seqs)))

    before = engine.stats
    results = run(body)
    after = engine.stats
    lengths = []
    for events in results:
        end = finished(events)
        assert end.reason == "stop" or end.sampled_tokens == 24
        assert text_of(events) == engine.tokenizer.decode(tokens_of(events))
        lengths.append(end.sampled_tokens)
    calls = after.decode_calls - before.decode_calls
    shared = after.multi_seq_decode_calls - before.multi_seq_decode_calls
    # The four prompts go in one or two batches (the worker may wake before the last submit),
    # then every step carries all the unfinished sequences: about one call per token of the
    # longest stream, shared while at least two streams run.
    assert calls <= max(lengths) + 3
    assert shared >= sorted(lengths)[-2] - 3
    assert after.max_batch_seqs >= 4


@slow
def test_greedy_output_is_the_same_alone_and_batched(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Name three colors.")
    others = [chat(engine, f"Describe the number {i}.") for i in range(3)]

    async def body() -> tuple[list[int], list[int]]:
        alone = tokens_of(await collect(engine.submit(request(prompt, 8))))
        seqs = [engine.submit(request(p, 8)) for p in [*others, prompt]]
        batched = await asyncio.gather(*(collect(s) for s in seqs))
        return alone, tokens_of(batched[-1])

    alone, batched = run(body)
    # Batched matrix products may round differently; the first tokens must still agree.
    assert alone[:4] == batched[:4]


# -- cancellation -------------------------------------------------------------------------------


@slow
def test_cancel_frees_the_slot_keeps_its_cells_and_ends_iteration(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Write an essay about the history of computing.")

    async def body() -> tuple[int, int, EngineFinished]:
        seq = engine.submit(request(prompt, 2000))
        seen = 0
        async for event in seq:
            assert isinstance(event, TokenEvent)
            seen += 1
            if seen == 5:
                break
        slot = seq.slot
        assert slot is not None
        seq.cancel()
        seq.cancel()  # idempotent
        assert [e async for e in seq] == []
        started = time.monotonic()
        while engine.stats.active_sequences > 0:
            assert time.monotonic() - started < 5, engine.stats
            await asyncio.sleep(0.005)
        # The cells it had evaluated stay (the prompt and some of the 5 tokens): the continuation a
        # canceller sends next, such as a tool loop's, reuses them.
        cells = engine.slot_cells(slot)
        again = finished(await collect(engine.submit(request(prompt, 1))))
        return seen, cells, again

    seen, cells, again = run(body)
    assert seen == 5
    assert cells >= len(prompt)
    assert again.cached_tokens == len(prompt) - 1


@slow
def test_cancel_while_waiting_in_the_queue(model_path: Path) -> None:
    eng = LlamaCppEngine(str(model_path), n_ctx=1024, n_seq=1, n_batch=64)
    eng.start()
    try:
        prompt = chat(eng, "Tell me about rivers.")

        async def body() -> EngineFinished:
            first = eng.submit(request(prompt, 2000, rid="first"))
            second = eng.submit(request(prompt, 5, rid="second"))
            async for _ in first:
                break
            second.cancel()
            assert [e async for e in second] == []
            first.cancel()
            third = eng.submit(request(prompt, 3, rid="third"))
            return finished(await collect(third))

        end = run(body)
        assert end.sampled_tokens == 3
        assert eng.stats.waiting == 0
    finally:
        eng.close()


# -- prefix reuse -------------------------------------------------------------------------------


@slow
def test_second_turn_reuses_the_cached_prefix(engine: LlamaCppEngine) -> None:
    tok = engine.tokenizer
    first_prompt = chat(engine, "What is the capital of France? Explain its history. " * 4)

    async def body() -> tuple[list[EngineEvent], list[EngineEvent], int, list[int]]:
        first = await collect(engine.submit(request(first_prompt, 10)))
        reply = tokens_of(first)
        second_prompt = [
            *first_prompt,
            *reply,
            *tok.encode("<|im_end|>\n<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n"),
        ]
        before = engine.stats.prompt_tokens_evaluated
        second = await collect(engine.submit(request(second_prompt, 4)))
        return first, second, engine.stats.prompt_tokens_evaluated - before, second_prompt

    first, second, evaluated, second_prompt = run(body)
    end = finished(second)
    assert end.prompt_tokens == len(second_prompt)
    # The first prompt and the reply's tokens that went through llama_decode are reused.
    assert end.cached_tokens >= len(first_prompt) + len(tokens_of(first)) - 1
    assert evaluated == len(second_prompt) - end.cached_tokens
    assert evaluated < len(second_prompt) // 2


@slow
def test_identical_prompt_evaluates_only_its_last_token(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Give me a haiku about autumn leaves.")

    async def body() -> tuple[EngineFinished, int]:
        await collect(engine.submit(request(prompt, 3)))
        before = engine.stats.prompt_tokens_evaluated
        end = finished(await collect(engine.submit(request(prompt, 3))))
        return end, engine.stats.prompt_tokens_evaluated - before

    end, evaluated = run(body)
    assert end.cached_tokens == len(prompt) - 1
    assert evaluated == 1


# -- UTF-8 --------------------------------------------------------------------------------------


@slow
def test_chinese_text_arrives_intact(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "请用中文详细介绍一下长城的历史。", system="你是一个乐于助人的助手。")
    injected = engine.tokenizer.encode("龘𝄞🤖长城是中国古代的军事防御工程。")

    async def body() -> list[EngineEvent]:
        seq = engine.submit(request(prompt, 30, checkpoint=Checkpoint(limit=10)))
        events = await collect(seq)
        seq.resume(injected)
        return events + await collect(seq)

    events = run(body)
    tokens = tokens_of(events)
    text = text_of(events)
    assert text == engine.tokenizer.decode(tokens)
    assert "龘𝄞🤖长城是中国古代的军事防御工程。" in text
    # No partial character leaks out as a replacement character mid-stream.
    assert all("\ufffd" not in e.text for e in events if isinstance(e, TokenEvent) and e.injected)


# -- limits and errors --------------------------------------------------------------------------


@slow
def test_overload_when_the_queue_is_full(model_path: Path) -> None:
    eng = LlamaCppEngine(str(model_path), n_ctx=1024, n_seq=1, n_batch=64, max_queue=2)
    eng.start()
    try:
        prompt = chat(eng, "Write a long story.")

        async def body() -> None:
            running = eng.submit(request(prompt, 2000, rid="running"))
            async for _ in running:
                break  # it holds the only slot now
            waiting = [eng.submit(request(prompt, 5, rid=f"w{i}")) for i in range(2)]
            with pytest.raises(Overloaded):
                eng.submit(request(prompt, 5, rid="too-many"))
            assert eng.stats.waiting <= 2
            for seq in (running, *waiting):
                seq.cancel()
            # Room again once the queue drains.
            await asyncio.sleep(0.2)
            end = finished(await collect(eng.submit(request(prompt, 2, rid="after"))))
            assert end.sampled_tokens == 2

        run(body)
    finally:
        eng.close()


@slow
def test_prompt_longer_than_the_context_is_rejected(model_path: Path) -> None:
    # llama.cpp rounds the cache up to 256 cells; unified, one sequence may use all of them.
    eng = LlamaCppEngine(str(model_path), n_ctx=256, n_seq=2, n_batch=64)
    eng.start()
    try:
        limit = eng.context_length
        assert limit == eng.stats.kv_size == 256
        token = eng.tokenizer.encode("a")[0]

        async def body() -> None:
            with pytest.raises(InvalidParameter, match=rf"Range of input length should be \[1, {limit}\]"):
                eng.submit(request([token] * (limit + 1), 5))
            with pytest.raises(InvalidParameter):
                eng.submit(request([], 5))
            with pytest.raises(InvalidParameter):
                eng.submit(request([10**9], 5))

        run(body)
    finally:
        eng.close()


@slow
def test_generation_stops_at_the_context_limit(model_path: Path) -> None:
    eng = LlamaCppEngine(str(model_path), n_ctx=256, n_seq=1, n_batch=256)
    eng.start()
    try:
        limit = eng.context_length
        prompt = chat(eng, "Count from one to one thousand. " * 40)[: limit - 20]

        async def body() -> list[EngineEvent]:
            return await collect(eng.submit(request(prompt, 1000)))

        end = finished(run(body))
        assert end.sampled_tokens <= 21
        if end.reason == "length":
            # The prompt plus 20 generated tokens fill the cache; the 21st cannot be fed back
            # but is still returned.
            assert end.sampled_tokens == 21
    finally:
        eng.close()


@slow
def test_shared_kv_pool_preempts_and_recovers(model_path: Path) -> None:
    # Four sequences of ~100 tokens each in a 256-cell unified cache: they cannot all fit, so the
    # newest is preempted (its cells freed) and evaluated again later; its consumer only waits.
    eng = LlamaCppEngine(str(model_path), n_ctx=256, n_seq=4, n_batch=128, prefill_chunk=32)
    eng.start()
    try:
        system = "You are a helpful assistant who always writes long and detailed answers with examples."
        prompts = [
            chat(eng, f"Story number {i}: once upon a time, in a kingdom far away", system=system)
            for i in range(4)
        ]
        assert all(40 <= len(p) <= 60 for p in prompts)

        async def body() -> tuple[list[list[EngineEvent]], list[list[EngineEvent]]]:
            seqs = [eng.submit(request(p, 60, rid=f"p{i}")) for i, p in enumerate(prompts)]
            together = list(await asyncio.gather(*(collect(s) for s in seqs)))
            alone = [await collect(eng.submit(request(p, 60))) for p in prompts]
            return together, alone

        together, alone = run(body)
        stats = eng.stats
        assert stats.preemptions > 0
        assert sum(stats.slot_cells) <= stats.kv_size
        for events, reference in zip(together, alone, strict=True):
            end = finished(events)
            assert end.reason == "stop" or end.sampled_tokens == 60
            assert text_of(events) == eng.tokenizer.decode(tokens_of(events))
            # Same greedy continuation as without contention (the tail may differ by rounding).
            assert tokens_of(events)[:8] == tokens_of(reference)[:8]
    finally:
        eng.close()


@slow
def test_worker_crash_fails_every_consumer(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = LlamaCppEngine(str(model_path), n_ctx=512, n_seq=2, n_batch=64)
    eng.start()
    try:
        prompt = chat(eng, "Hello there.")
        worker = eng._worker
        original = worker._step
        calls = 0

        def flaky_step() -> None:
            nonlocal calls
            calls += 1
            if calls > 3:
                raise RuntimeError("simulated crash")
            original()

        monkeypatch.setattr(worker, "_step", flaky_step)

        async def body() -> list[BaseException | list[EngineEvent]]:
            seqs = [eng.submit(request(prompt, 500, rid=f"x{i}")) for i in range(3)]
            return list(await asyncio.gather(*(collect(s) for s in seqs), return_exceptions=True))

        outcomes = run(body, timeout=60)
        assert all(isinstance(o, EngineFailure) for o in outcomes), outcomes

        async def after() -> None:
            with pytest.raises(EngineFailure):
                eng.submit(request(prompt, 5))

        run(after)
    finally:
        eng.close()


@slow
def test_aclose_fails_running_sequences(model_path: Path) -> None:
    eng = LlamaCppEngine(str(model_path), n_ctx=512, n_seq=2, n_batch=64)
    eng.start()
    prompt = chat(eng, "Hello there.")

    async def body() -> None:
        seq = eng.submit(request(prompt, 5000))
        async for _ in seq:
            break
        await eng.aclose()
        with pytest.raises(EngineFailure):
            async for _ in seq:
                pass
        with pytest.raises(EngineFailure):
            eng.submit(request(prompt, 5))
        with pytest.raises(EngineFailure):
            eng.tokenizer.encode("hello")

    run(body)


# -- helpers (no model) -------------------------------------------------------------------------


@given(st.lists(st.integers(0, 3), max_size=40), st.lists(st.integers(0, 3), max_size=40))
def test_common_prefix(a: list[int], b: list[int]) -> None:
    expected = 0
    while expected < min(len(a), len(b)) and a[expected] == b[expected]:
        expected += 1
    assert common_prefix(a, b) == expected


@given(st.text(alphabet="ab</>k", max_size=30), st.integers(1, 5))
def test_marker_is_found_across_token_boundaries(text: str, step: int) -> None:
    marker = "</k>"
    seq = object.__new__(CheckpointState)
    seq.marker_tail = ""
    pieces = [text[i : i + step] for i in range(0, len(text), step)]
    seen = any(marker_seen(seq, marker, piece) for piece in pieces)
    assert seen == (marker in text)
