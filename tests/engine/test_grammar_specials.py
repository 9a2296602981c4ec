"""Under a grammar, special tokens are never drawn: llama.cpp's grammar judges a token by its text,
and the single token ``<tool_call>`` spells text that a JSON string may hold (the tiny model once
wrote it as a location). Real vocabulary and grammar sampler of the tiny GGUF; the logits are set
by hand so that the special token is the model's first choice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from thinkserve.core.types import SamplingParams
from thinkserve.engine.llamacpp.grammar import ConstraintState
from thinkserve.engine.llamacpp.tokenizer import LlamaCppTokenizer, VocabFile
from thinkserve.engine.protocol import Constraint, EngineRequest

GGUF = Path(__file__).parent.parent / "fixtures" / "tiny-qwen3.gguf"
# A JSON string, as the tool and JSON-mode grammars spell one.
STRING = r'root ::= "\"" [^"\\\x7F\x00-\x1F]* "\""'


@pytest.fixture(scope="module")
def vocab() -> Iterator[VocabFile]:
    file = VocabFile(str(GGUF))
    try:
        yield file
    finally:
        file.close()


def _draw(state: ConstraintState, tokenizer: LlamaCppTokenizer, favourites: dict[int, float]) -> int:
    logits = np.zeros(tokenizer.n_vocab, np.float32)
    for token, logit in favourites.items():
        logits[token] = logit
    return state.sample(logits)


def _ready(vocab: VocabFile, special_ids: tuple[int, ...]) -> ConstraintState:
    tokenizer = vocab.tokenizer
    state = ConstraintState(Constraint(STRING))
    request = EngineRequest("g", [1], SamplingParams(temperature=0.0), 16)
    assert state.ready(request, tokenizer._vocab, tokenizer.n_vocab, 64, special_ids)
    return state


def test_special_ids_are_the_special_tokens_but_the_ends_of_generation(vocab: VocabFile) -> None:
    tokenizer = vocab.tokenizer
    ids = set(tokenizer.special_ids)
    for text in ("<tool_call>", "</tool_call>", "<think>", "</think>", "<|im_start|>"):
        assert tokenizer.token_id(text) in ids, text
    end = tokenizer.token_id("<|im_end|>")
    assert end is not None and tokenizer.is_eog(end) and end not in ids
    assert tokenizer.token_id("hello") not in ids


def test_a_special_token_is_never_drawn_inside_a_json_string(vocab: VocabFile) -> None:
    tokenizer = vocab.tokenizer
    quote, letter = tokenizer.encode('"', special=False)[0], tokenizer.encode("H", special=False)[0]
    call, end = tokenizer.token_id("<tool_call>"), tokenizer.token_id("<|im_end|>")
    assert call is not None and end is not None

    unguarded = _ready(vocab, ())
    assert _draw(unguarded, tokenizer, {quote: 10.0}) == quote
    # The grammar alone lets the special token into the string: what this guards against.
    assert _draw(unguarded, tokenizer, {call: 20.0, letter: 10.0}) == call

    state = _ready(vocab, tokenizer.special_ids)
    assert _draw(state, tokenizer, {quote: 10.0}) == quote
    assert _draw(state, tokenizer, {call: 20.0, letter: 10.0}) == letter
    assert _draw(state, tokenizer, {call: 20.0, quote: 10.0}) == quote  # the string closes
    # Complete, the grammar passes only the end of generation, which is never banned.
    assert _draw(state, tokenizer, {call: 20.0, end: 10.0}) == end
    unguarded.free()
    state.free()
