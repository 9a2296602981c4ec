"""The token-level protocols: request bodies and streamed chunks, as each server writes them."""

from __future__ import annotations

import pytest

from thinkserve.core.types import SamplingParams
from thinkserve.engine.remote.llamacpp_wire import LOOKAHEAD, LlamaCppWire
from thinkserve.engine.remote.vllm_wire import VllmWire
from thinkserve.engine.remote.wire import Chunk, WireError

SAMPLING = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, seed=7)


def test_vllm_body_sends_token_ids_and_asks_for_them_back() -> None:
    body = VllmWire().body([1, 2, 3], 50, SAMPLING, "Qwen/Qwen3-8B", stream=True)
    assert body["prompt"] == [1, 2, 3] and body["max_tokens"] == 50
    assert body["return_token_ids"] is True and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == "Qwen/Qwen3-8B" and body["seed"] == 7 and body["top_k"] == 20
    greedy = VllmWire().body([1], 1, SamplingParams(temperature=0.0, top_k=0), None, stream=True)
    assert greedy["top_k"] == -1 and "model" not in greedy and "seed" not in greedy


def test_vllm_chunks() -> None:
    wire = VllmWire()
    first = {"choices": [{"index": 0, "text": "Hi", "token_ids": [13048], "finish_reason": None}]}
    assert wire.chunk(first) == Chunk([13048], None, None)
    last = {"choices": [{"index": 0, "text": "", "token_ids": [151645], "finish_reason": "stop"}]}
    assert wire.chunk(last) == Chunk([151645], "stop", None)
    usage = {"choices": [], "usage": {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 8}}}
    assert wire.chunk(usage) == Chunk((), None, 8)
    bare = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}
    assert wire.chunk(bare).cached_tokens == 0  # the server runs without --enable-prompt-tokens-details


@pytest.mark.parametrize(
    "data",
    [
        {"error": {"message": "boom", "type": "InternalServerError", "code": 500}},
        {"object": "error", "message": "boom"},
        {"choices": [{"index": 0, "text": "x", "finish_reason": None}]},  # no token_ids: vLLM too old
        {"choices": [{"index": 0, "token_ids": [1], "finish_reason": "abort"}]},
        {"choices": [{"index": 0, "token_ids": ["1"], "finish_reason": None}]},
        [],
    ],
)
def test_vllm_errors(data: object) -> None:
    with pytest.raises(WireError):
        VllmWire().chunk(data)


def test_llamacpp_body_and_chunks() -> None:
    wire = LlamaCppWire()
    body = wire.body([1, 2], 5, SamplingParams(temperature=0.0, seed=None), None, stream=True)
    # A few tokens more than asked: the last one asked may wait for the next (pieces).
    assert body["prompt"] == [1, 2] and body["n_predict"] == 5 + LOOKAHEAD and body["return_tokens"] is True
    whole = wire.body([1, 2], 5, SamplingParams(temperature=0.0, seed=None), None, stream=False)
    assert whole["stream"] is False and whole["n_predict"] == 5  # every id comes back: none ahead
    assert body["seed"] == -1 and body["min_p"] == 0.0 and body["cache_prompt"] is True
    assert wire.chunk({"content": "Hi", "tokens": [13048], "stop": False}) == Chunk([13048], text="Hi")
    partial = {"content": "😀", "tokens": [222], "stop": False, "tokens_predicted": 3}
    assert wire.chunk(partial) == Chunk([222], generated=3, text="😀")
    final = {"content": "", "tokens": [], "stop": True, "stop_type": "limit", "timings": {"cache_n": 30}}
    assert wire.chunk(final) == Chunk([], "length", 30)
    answer = {
        "content": "Hi😀",
        "tokens": [13048, 9, 222],
        "stop": True,
        "stop_type": "limit",
        "tokens_predicted": 3,
    }
    assert wire.chunk(answer) == Chunk([13048, 9, 222], "length", 0)  # "stream": false: every id
    eos = {"tokens": [], "stop": True, "stop_type": "eos", "tokens_cached": 99}
    assert wire.chunk(eos) == Chunk([], "stop", 0)  # tokens_cached counts generated tokens too
    with pytest.raises(WireError, match="slot"):
        wire.chunk({"error": {"code": 503, "message": "no slot available"}})
    with pytest.raises(WireError):
        wire.chunk({"stop": True, "stop_type": "exploded"})
