"""Tokenizing by the parts between special tokens gives llama.cpp's own ids for the whole text
(``engine.llamacpp.fragments``), on the real vocabulary of the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkserve.engine.llamacpp import fragments as fragments_module
from thinkserve.engine.llamacpp.fragments import Fragments
from thinkserve.engine.llamacpp.tokenizer import LlamaCppTokenizer, VocabFile

GGUF = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-qwen3.gguf"


@pytest.fixture(scope="module")
def tokenizer() -> Iterator[LlamaCppTokenizer]:
    vocab = VocabFile(str(GGUF))
    try:
        yield vocab.tokenizer
    finally:
        vocab.close()


PARTS = st.sampled_from(
    [
        "<|im_start|>",
        "<|im_end|>",
        "<think>",
        "</think>",
        "<tool_call>",
        "<|endoftext|>",
        "<|im_sta",  # the start of a special text, as text
        "im_end|>",
        "user\n",
        "assistant\n",
        "\n",
        "\n\n",
        " ",
        "  Hello, world!",
        "Say hello.",
        "你好，世界",
        "🤖 <b>bold</b>",
        "<",
        "|>",
        "x" * 40,
    ]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PARTS, max_size=14))
def test_pieces_give_the_ids_of_the_whole_text(tokenizer: LlamaCppTokenizer, parts: list[str]) -> None:
    text = "".join(parts)
    assert tokenizer._fragments is not None  # the Qwen3 vocabulary is cut the same way
    assert tokenizer.encode(text) == tokenizer._tokenize(text, True)
    assert tokenizer.encode(text) == tokenizer._tokenize(text, True)  # remembered the 2nd time


def test_vocabularies_that_cut_otherwise_are_tokenized_whole() -> None:
    def encode(text: str) -> list[int]:
        return [ord(c) for c in text]

    assert Fragments.of({"<a>": 1}, stripping=True, encode=encode) is None
    assert Fragments.of({"<a>": 1, "<a>b": 2}, stripping=False, encode=encode) is None  # contains
    assert Fragments.of({"ab": 1, "bc": 2}, stripping=False, encode=encode) is None  # "abc": which?
    assert Fragments.of({"aa": 1}, stripping=False, encode=encode) is None  # "aaa" overlaps itself
    assert Fragments.of({"": 1, "<a>": 2}, stripping=False, encode=encode) is None
    pieces = Fragments.of({"<a>": 1, "<b>": 2}, stripping=False, encode=encode)
    assert pieces is not None
    assert pieces.encode("x<a>yz<b><a>") == [ord("x"), 1, ord("y"), ord("z"), 2, 1]
    assert pieces.encode("") == [] and pieces.encode("plain") == encode("plain")


def test_remembered_pieces_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def encode(text: str) -> list[int]:
        calls.append(text)
        return [0] * len(text)

    monkeypatch.setattr(fragments_module, "MAX_IDS", 10)
    monkeypatch.setattr(fragments_module, "MAX_PIECE", 6)
    pieces = Fragments({"<s>": 1}, encode)
    pieces.encode("abcd<s>efgh")  # 8 ids remembered
    pieces.encode("abcd<s>efgh")
    assert calls == ["abcd", "efgh"]
    pieces.encode("ijkl")  # 12 ids: the least recently used piece ("abcd") goes
    pieces.encode("efgh")
    assert calls == ["abcd", "efgh", "ijkl"]
    pieces.encode("abcd")  # tokenized again; "ijkl" is now the least recently used
    pieces.encode("efgh")
    pieces.encode("ijkl")
    assert calls == ["abcd", "efgh", "ijkl", "abcd", "ijkl"]
    pieces.encode("long piece")  # longer than MAX_PIECE: never remembered
    pieces.encode("long piece")
    assert calls.count("long piece") == 2
