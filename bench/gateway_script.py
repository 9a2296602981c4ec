"""The reply the instant upstream plays in ``bench/gateway.py``, in the gateway's own tokenizer, and
the prompt ids thinkserve sends for the benchmark's one user message (imports thinkserve).

* ``upstream`` path: the tokenizer of a GGUF file (vocabulary only), the file thinkserve's remote
  engine is configured with; the reply is the first N tokens of an English text.
* ``fake`` path: the scripted engine's one-token-per-character tokenizer; the reply is N
  characters, which the scripted engine answers itself (``answer``).

Either way the reply ends with the end-of-generation token ``<|im_end|>`` (no text), so both
upstream endpoints stream N events of the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from thinkserve.core.types import Message
from thinkserve.engine.protocol import Tokenizer
from thinkserve.thinking.chat_format import ChatFormat

TEXT = (
    "Hello! I am a helpful assistant. Ask me anything about the weather, the news, the history of "
    "a city, a recipe for dinner, or the best way to learn a new language, and I will answer as well "
    "as I can, in a few short sentences, with the facts that matter most to you and nothing more. "
) * 4


@dataclass(frozen=True, slots=True)
class Script:
    tokens: list[tuple[int, str]]
    """The reply: (id, text) per token, the end token last."""
    prompt_ids: list[int]

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.tokens)


def build(path: str, gguf: Path, prompt: str, chunks: int) -> Script:
    if path == "fake":
        from thinkserve.engine.fake.tokenizer import FakeTokenizer

        return _script(FakeTokenizer(), prompt, chunks)
    from thinkserve.engine.llamacpp.native import install_native_logging
    from thinkserve.engine.llamacpp.tokenizer import VocabFile

    install_native_logging()  # llama.cpp's loading chatter goes to logging, not to stderr
    vocab = VocabFile(str(gguf))
    try:
        return _script(vocab.tokenizer, prompt, chunks)
    finally:
        vocab.close()


def _script(tokenizer: Tokenizer, prompt: str, chunks: int) -> Script:
    ids = tokenizer.encode(TEXT, special=False)[:chunks]
    if len(ids) < chunks:
        raise ValueError(f"the reply text has only {len(ids)} tokens")
    tokens = [(t, tokenizer.decode([t])) for t in ids]
    if not TEXT.startswith("".join(t for _, t in tokens)):
        raise ValueError("the reply's tokens do not decode one by one")
    end = tokenizer.token_id("<|im_end|>")
    if end is None:
        raise ValueError("the tokenizer has no <|im_end|> token")
    chat = ChatFormat(tokenizer)
    rendered = chat.render([Message("user", prompt)], thinking=False)
    return Script([*tokens, (end, "")], rendered.tokens)
