"""Token ids that llama.cpp server sends only as bytes (a token ending inside a UTF-8 character):
recovered from the vocabulary, in a stream, and at the thinking budget's edge; a whole completion
lists them itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import TINY_MODEL
from tests.remote.scripted import Script
from tests.remote.test_pool import GREEDY, A, drain, pool, prompt, request, run, sampled_text
from thinkserve.engine.protocol import Checkpoint, EngineFinished, EngineRequest, Paused, TokenEvent
from thinkserve.engine.remote.llamacpp_wire import LOOKAHEAD
from thinkserve.engine.remote.pieces import PieceIndex, recover
from thinkserve.engine.remote.vocab import RemoteTokenizer, load_vocab


@pytest.fixture(scope="module")
def qwen() -> Iterator[tuple[RemoteTokenizer, PieceIndex]]:
    if not TINY_MODEL.is_file():
        pytest.skip(f"{TINY_MODEL} is missing")
    vocab = load_vocab(str(TINY_MODEL))
    try:
        tokenizer = vocab.tokenizer
        yield tokenizer, PieceIndex.build(tokenizer.token_bytes, tokenizer.n_vocab)
    finally:
        if vocab.close is not None:
            vocab.close()


@pytest.mark.parametrize("text", ["龘", "Llamas 🦙 and 龘 here", "龘龘 🦙🦙"])
def test_withheld_ids_come_back_from_the_text(qwen: tuple[RemoteTokenizer, PieceIndex], text: str) -> None:
    tokenizer, index = qwen
    ids = tokenizer.encode(text)
    pieces = [tokenizer.token_bytes(t) for t in ids]
    # The server withholds every token whose bytes leave a character open, then sends their bytes
    # with the next token's.
    held: list[int] = []
    recovered: list[int] = []
    recoveries = 0
    sent = b""
    for token, piece in zip(ids, pieces, strict=True):
        sent += piece
        try:
            content = sent.decode("utf-8")
        except UnicodeDecodeError:
            held.append(token)
            continue
        if held:
            found = recover(index, content, [token], len(held))
            assert found == held
            recovered += found
            recoveries += 1
            held = []
        recovered.append(token)
        sent = b""
    assert recovered == ids
    assert recoveries >= 1, "the text should hold a character split over tokens"


def test_a_text_that_does_not_fit_is_not_recovered(qwen: tuple[RemoteTokenizer, PieceIndex]) -> None:
    tokenizer, index = qwen
    last = tokenizer.encode("!")
    assert recover(index, "龘!", last, 1) is None  # 龘 is two tokens
    assert recover(index, "abc", last, 1) is None  # does not end with the last token's bytes
    assert recover(index, "!", last, 0) is None


def test_a_stream_with_withheld_tokens_loses_nothing() -> None:
    async def body() -> None:
        async with (
            pool({A: Script(protocol="llamacpp")}) as whole,
            pool({A: Script(protocol="llamacpp", withhold=frozenset({2, 5, 6}))}) as held,
        ):
            assert held.pool.upstreams[0].wire is not None
            assert held.pool.upstreams[0].wire.name == "llamacpp"
            expected = await drain(whole.submit(request(prompt(whole, "12+7?"))))
            events = await drain(held.submit(request(prompt(held, "12+7?"))))
            assert [e.token for e in events if isinstance(e, TokenEvent)] == [
                e.token for e in expected if isinstance(e, TokenEvent)
            ]
            assert sampled_text(held, events).endswith("The answer is 19.")
            done = events[-1]
            assert isinstance(done, EngineFinished) and done.reason == "stop"
            assert done.sampled_tokens == sum(isinstance(e, TokenEvent) for e in events)

    run(body)


def test_a_whole_completion_lists_every_id_and_asks_none_ahead() -> None:
    async def body() -> None:
        script = Script(protocol="llamacpp", withhold=frozenset({2, 5, 6}))
        async with pool({A: script}) as engine:
            tokens = prompt(engine, "12+7?")
            streamed = await drain(engine.submit(request(tokens)))
            events = await drain(engine.submit(EngineRequest("w", tokens, GREEDY, 200, whole=True)))
            assert script.wholes == 1 and script.requests[1]["stream"] is False
            assert script.requests[1]["n_predict"] == 200  # no lookahead: no id is withheld
            assert [e for e in events if isinstance(e, TokenEvent)] == [
                e for e in streamed if isinstance(e, TokenEvent)
            ]
            assert sampled_text(engine, events).endswith("The answer is 19.")

    run(body)


def test_a_token_withheld_at_the_budget_comes_with_the_lookahead() -> None:
    async def body() -> None:
        # Position 9 is the budget's 10th token: only the lookahead's next one brings it.
        script = Script(protocol="llamacpp", withhold=frozenset({9}))
        async with pool({A: script}) as engine:
            end = engine.tokenizer.token_id("</think>")
            tokens = prompt(engine, "12+7?")
            early = engine.tokenizer.encode("\n\nStop now.\n</think>\n\n")
            sequence = engine.submit(request(tokens, checkpoint=Checkpoint(limit=10, until_token=end)))
            events = await drain(sequence, early)
            paused = [i for i, e in enumerate(events) if isinstance(e, Paused)]
            before = [e.token for e in events[: paused[0]] if isinstance(e, TokenEvent)]
            reply = engine.tokenizer.encode(script.reply)
            assert before == reply[:10]  # the budget exactly, the withheld 10th included
            assert script.requests[0]["n_predict"] == 10 + LOOKAHEAD
            assert script.requests[1]["prompt"] == tokens + before + early
            assert sampled_text(engine, events).endswith("The answer is 19.")

    run(body)
