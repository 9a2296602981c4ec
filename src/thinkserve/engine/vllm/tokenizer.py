"""A Hugging Face fast tokenizer as ``engine.protocol.Tokenizer``, and streaming detokenization.

vLLM is fed token ids and returns token ids; the text side is thinkserve's, read from the same
``tokenizer.json`` vLLM loads. Encoding goes to the Rust ``tokenizers`` object directly: one copy
parses control-token text (``<|im_start|>``) and one leaves it as text (``encode_special_tokens``),
as llama.cpp's ``parse_special`` does. Added tokens that are not special (Qwen3's ``<think>``) are
matched by both, as in llama.cpp.

Every token's bytes come from the vocabulary (``piece``), so a stream's text equals ``decode`` of
its tokens, and a character split over two tokens comes out whole once its last byte arrives:

- byte-level BPE (Qwen, Llama 3, DeepSeek): each character of a token string stands for a byte;
- SentencePiece-style vocabularies: ``▁`` is a space and ``<0xNN>`` a byte;
- added tokens: their text.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Sequence as Seq
from typing import Any, Protocol

from thinkserve.core.errors import EngineFailure


class Pieces(Protocol):
    """What streaming detokenization needs of a tokenizer."""

    def piece(self, token: int) -> bytes: ...


def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest are shifted."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    shift = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + shift)
            shift += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class HfTokenizer:
    """Tokenizer and chat template of a Hugging Face model directory (``tokenizer.json`` needed)."""

    def __init__(self, hf: Any) -> None:
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise EngineFailure("The model has no fast tokenizer (tokenizer.json).")
        from tokenizers import Tokenizer

        self._hf = hf
        self._parse = backend
        self._plain = Tokenizer.from_str(backend.to_str())
        self._plain.encode_special_tokens = True
        self._n_vocab = int(backend.get_vocab_size(with_added_tokens=True))
        added = backend.get_added_tokens_decoder()
        self._added = {int(i): t.content.encode("utf-8") for i, t in added.items()}
        self._controls = frozenset(t.content for t in added.values() if t.special)
        decoder = json.loads(backend.to_str()).get("decoder") or {}
        self._byte_level = "ByteLevel" in json.dumps(decoder)
        self._bytes = byte_decoder() if self._byte_level else {}
        self._pieces: dict[int, bytes] = {}
        template = hf.chat_template
        if isinstance(template, dict):
            template = template.get("default")
        self._chat_template: str | None = template if isinstance(template, str) else None
        self._bos = hf.bos_token if isinstance(hf.bos_token, str) else ""
        self._eos = hf.eos_token if isinstance(hf.eos_token, str) else ""

    @classmethod
    def load(cls, model_dir: str) -> HfTokenizer:
        """Read the tokenizer of ``model_dir`` (blocking; a second or so for 150k tokens)."""
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise EngineFailure(f"Cannot read the tokenizer of {model_dir}: {exc}") from exc
        return cls(hf)

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def chat_template(self) -> str | None:
        return self._chat_template

    @property
    def bos_token(self) -> str:
        return self._bos

    @property
    def eos_token(self) -> str:
        return self._eos

    @property
    def control_texts(self) -> frozenset[str]:
        return self._controls

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        if not text:
            return []
        backend = self._parse if special else self._plain
        return list(backend.encode(text, add_special_tokens=False).ids)

    def decode(self, tokens: Seq[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def token_id(self, text: str) -> int | None:
        token = self._parse.token_to_id(text)
        if token is None or self.piece(int(token)) != text.encode("utf-8"):
            return None
        return int(token)

    def piece(self, token: int) -> bytes:
        """The bytes of one token; added tokens render as their text (``<think>``)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        piece = self._added.get(token)
        if piece is None:
            text = self._parse.id_to_token(token)
            if text is None:
                raise EngineFailure(f"Token id {token} is not in the vocabulary.")
            piece = self._token_bytes(text)
        self._pieces[token] = piece
        return piece

    def _token_bytes(self, text: str) -> bytes:
        if self._byte_level:
            try:
                return bytes(self._bytes[c] for c in text)
            except KeyError:
                return text.encode("utf-8")
        if len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            return bytes([int(text[3:5], 16)])
        return text.replace("▁", " ").encode("utf-8")


class StreamDecoder:
    """Incremental UTF-8 decoding of one sequence's tokens."""

    __slots__ = ("_decoder", "_tokenizer")

    def __init__(self, tokenizer: Pieces) -> None:
        self._tokenizer = tokenizer
        # errors="replace" matches HfTokenizer.decode; the incremental decoder keeps an incomplete
        # trailing character buffered instead of replacing it.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token: int) -> str:
        return self._decoder.decode(self._tokenizer.piece(token))
