"""The gateway's tokenizer for remote engines: Hugging Face files through ``tokenizers``.

A small byte-level BPE is trained here with the special tokens of Qwen3's vocabulary, so the
test needs no model hub; ``tests/fixtures/tiny-qwen3-hf`` (the tiny model's HF export), when
present, is also checked against the GGUF's own vocabulary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from thinkserve.core.errors import ConfigError
from thinkserve.core.types import Message
from thinkserve.engine.remote.vocab import HfTokenizer, load_vocab
from thinkserve.thinking.chat_format import ChatFormat

tokenizers = pytest.importorskip("tokenizers", reason="pip install 'thinkserve[hf]' (or make install-dev)")

FIXTURES = Path(__file__).parent.parent / "fixtures"
CONTROLS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[AddedToken(t, special=True) for t in CONTROLS],
    )
    corpus = ["Hello world, what is 12 plus 7? The answer is 19.", "你好，世界！我是一个助手。"] * 50
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.add_tokens([AddedToken("<think>", special=False), AddedToken("</think>", special=False)])
    path = tmp_path_factory.mktemp("hf")
    tokenizer.save(str(path / "tokenizer.json"))
    config = {"chat_template": TEMPLATE, "eos_token": "<|im_end|>", "bos_token": None}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": [0, 2]}))
    return path


def hf(folder: Path) -> HfTokenizer:
    vocab = load_vocab(str(folder))
    assert isinstance(vocab.tokenizer, HfTokenizer)
    return vocab.tokenizer


def test_control_tokens_parse_only_when_asked(folder: Path) -> None:
    tok = hf(folder)
    assert tok.control_texts == frozenset(CONTROLS)
    end = tok.token_id("<|im_end|>")
    assert end is not None and tok.encode("hi<|im_end|>")[-1] == end
    assert end not in tok.encode("hi<|im_end|>", special=False)
    assert tok.decode(tok.encode("hi<|im_end|>", special=False)) == "hi<|im_end|>"
    # The think tags are added but not special: parsed either way, as llama.cpp does for Qwen3.
    think = tok.token_id("<think>")
    assert think is not None and tok.encode("<think>", special=False) == [think]


def test_end_of_generation_ids(folder: Path) -> None:
    tok = hf(folder)
    assert tok.eos_token == "<|im_end|>" and tok.bos_token == ""
    ends = [tok.token_id("<|im_end|>"), tok.token_id("<|endoftext|>")]
    assert all(t is not None and tok.is_eog(t) for t in ends)
    assert not tok.is_eog(tok.encode("Hello")[0])
    assert tok.n_vocab == len(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]) + 2


def test_streamed_text_is_the_decoded_text(folder: Path) -> None:
    vocab = load_vocab(str(folder / "tokenizer.json"))
    # 龍 is not in the training text: its three UTF-8 bytes are three tokens.
    text = "<think>\n你好，世界！龍</think>\n\nThe answer is 19.<|im_end|>"
    ids = vocab.tokenizer.encode(text)
    decoder = vocab.decoder()
    pieces = [decoder.feed(t) for t in ids]
    assert "".join(pieces) + decoder.flush() == vocab.tokenizer.decode(ids) == text
    assert "" in pieces  # a multi-byte character split over tokens waits for its last byte
    # Each token's bytes, parts of a character included, are what llama.cpp server sends.
    assert b"".join(vocab.tokenizer.token_bytes(t) for t in ids) == text.encode()
    dragon = vocab.tokenizer.encode("龍")
    assert [len(vocab.tokenizer.token_bytes(t)) for t in dragon] == [1, 1, 1]


def test_the_chat_template_comes_from_the_config(folder: Path) -> None:
    chat = ChatFormat(hf(folder))
    prompt = chat.render([Message("user", "What is 12 plus 7?")], thinking=True)
    assert prompt.opened
    assert hf(folder).decode(prompt.tokens).endswith("<|im_start|>assistant\n<think>\n")


def test_missing_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tokenizer\.json"):
        load_vocab(str(tmp_path))
    with pytest.raises(ConfigError, match="no such file"):
        load_vocab(str(tmp_path / "model.gguf"))


def test_the_tiny_model_s_hf_export_tokenizes_like_its_gguf() -> None:
    export = Path(os.environ.get("THINKSERVE_TINY_HF", FIXTURES / "tiny-qwen3-hf"))
    if not (export / "tokenizer.json").is_file():
        pytest.skip(f"{export} is not there (the tiny model's HF export)")
    gguf = load_vocab(str(FIXTURES / "tiny-qwen3.gguf"))
    files = load_vocab(str(export))
    try:
        for text in [
            "Hello world",
            "你好，世界！",
            "<|im_start|>user\nhi<|im_end|>\n<think>\n\n</think>\n\n",
        ]:
            assert files.tokenizer.encode(text) == gguf.tokenizer.encode(text)
        assert files.tokenizer.control_texts >= {"<|im_start|>", "<|im_end|>"}
        # Every token's bytes alike (what recovers ids that llama.cpp server sent as bytes only).
        for token in range(gguf.tokenizer.n_vocab):
            assert files.tokenizer.token_bytes(token) == gguf.tokenizer.token_bytes(token), token
    finally:
        if gguf.close is not None:
            gguf.close()
