"""The model's own tokenizer read from a loaded llama.cpp model, and streaming UTF-8 detokenization.

``LlamaCppTokenizer`` implements ``engine.protocol.Tokenizer`` on top of llama.cpp's vocabulary
(``llama_tokenize`` / ``llama_token_to_piece``). The vocabulary is read-only once the model is
loaded, so these calls are safe from the event loop thread while the engine's worker thread
decodes; they are pure CPU work bounded by the text length, never a wait.

``StreamDecoder`` turns one sequence's token pieces into text incrementally, holding back an
incomplete multi-byte UTF-8 character until its last byte arrives.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
from collections.abc import Sequence as Seq
from typing import Any

import llama_cpp

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.llamacpp.fragments import Fragments

_CHAT_TEMPLATE_KEY = b"tokenizer.chat_template"


class LlamaCppTokenizer:
    """Tokenizer and chat template of a llama.cpp model (valid while the engine is running)."""

    def __init__(self, model: Any, vocab: Any) -> None:
        self._vocab = vocab
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        # Pieces never change for a loaded vocabulary; caching them makes decoding a dict lookup.
        # Both threads fill it, and a dict item assignment is atomic under the GIL.
        self._pieces: dict[int, bytes] = {}
        self._texts: dict[int, str | None] = {}
        self._eog: dict[int, bool] = {}
        self._closed = threading.Event()
        self._chat_template = _meta_string(model, _CHAT_TEMPLATE_KEY)
        self._bos = self._special_text(int(llama_cpp.llama_vocab_bos(vocab)))
        self._eos = self._special_text(int(llama_cpp.llama_vocab_eos(vocab)))
        self._controls, self._fragments, self._special_ids = self._scan_specials()

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

    @property
    def special_ids(self) -> tuple[int, ...]:
        """The special tokens (control and user-defined: ``<|im_start|>``, ``<tool_call>``,
        ``<think>``), end-of-generation tokens left out: ids a grammar must not let through.
        llama.cpp's grammar judges a token by its text, and ``<tool_call>`` spells text that fits
        inside a JSON string; sampled there, it would end a tool call early in the parser."""
        return self._special_ids

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        self._check_open()
        if special and self._fragments is not None:
            # A prompt's parts between special tokens: mostly tokenized before (``fragments``).
            return self._fragments.encode(text)
        return self._tokenize(text, special)

    def _tokenize(self, text: str, special: bool) -> list[int]:
        data = text.encode("utf-8")
        if not data:
            return []
        # A BPE token covers at least one byte, so len(data) + a few ids is always enough room;
        # the retry covers tokenizers that add tokens of their own.
        capacity = len(data) + 8
        for _ in range(2):
            buf = (llama_cpp.llama_token * capacity)()
            # add_special=False: chat templates spell BOS and friends out themselves.
            n = int(llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, False, special))
            if n >= 0:
                return list(buf[:n])
            capacity = -n
        raise EngineFailure("tokenization failed")

    def decode(self, tokens: Seq[int]) -> str:
        self._check_open()
        # Same piece bytes and the same decoding rule as the streaming path, so the text of a
        # stream equals decode() of its tokens.
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def token_id(self, text: str) -> int | None:
        ids = self.encode(text, special=True)
        if len(ids) == 1 and self.piece(ids[0]) == text.encode("utf-8"):
            return ids[0]
        return None

    def piece(self, token: int) -> bytes:
        """The bytes of one token; special tokens render as their text (``<think>``)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        self._check_open()
        size = 32
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = int(llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, True))
            if n >= 0:
                piece = buf.raw[:n]
                self._pieces[token] = piece
                return piece
            size = -n
        raise EngineFailure("detokenization failed")

    def text(self, token: int) -> str | None:
        """The piece of ``token`` as text when it is whole UTF-8 by itself, else None (a byte of
        a character split over several tokens)."""
        try:
            return self._texts[token]
        except KeyError:
            pass
        try:
            text: str | None = self.piece(token).decode("utf-8")
        except UnicodeDecodeError:
            text = None
        self._texts[token] = text
        return text

    def token_bytes(self, token: int) -> bytes:
        """``piece``, by the name the remote engine's tokenizers share (``RemoteTokenizer``)."""
        return self.piece(token)

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation (EOS, EOT, ``<|im_end|>`` ...)."""
        known = self._eog.get(token)
        if known is None:
            known = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
            self._eog[token] = known
        return known

    def close(self) -> None:
        """Mark the vocabulary as gone; called before the engine frees the model."""
        self._closed.set()

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise EngineFailure("the engine is closed")

    def _scan_specials(self) -> tuple[frozenset[str], Fragments | None, tuple[int, ...]]:
        """The control texts: the tokens llama_tokenize parses only with parse_special
        (user-defined ones such as Qwen3's <think> are parsed either way); piece-wise tokenizing
        at every special token, where it gives the same ids (``fragments``); and ``special_ids``.
        One pass over the vocabulary, about 0.2 s for 150k tokens, while the model loads (worker
        thread or VocabFile's thread)."""
        control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
        special = control | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        strips = llama_cpp.LLAMA_TOKEN_ATTR_LSTRIP | llama_cpp.LLAMA_TOKEN_ATTR_RSTRIP
        get_attr = llama_cpp.llama_vocab_get_attr
        texts = set()
        specials: dict[str, int] = {}
        special_ids: list[int] = []
        stripping = undecodable = False
        for token in range(self._n_vocab):
            attr = int(get_attr(self._vocab, token))
            if not attr & special:
                continue
            if not self.is_eog(token):
                special_ids.append(token)
            stripping = stripping or bool(attr & strips)
            try:
                text = self.piece(token).decode("utf-8")
            except UnicodeDecodeError:
                undecodable = True
                continue
            specials[text] = token
            if text and attr & control:
                texts.add(text)
        fragments = None
        if not undecodable:
            fragments = Fragments.of(specials, stripping, lambda piece: self._tokenize(piece, True))
        return frozenset(texts), fragments, tuple(special_ids)

    def _special_text(self, token: int) -> str:
        if token < 0 or token >= self._n_vocab:
            return ""
        return self.piece(token).decode("utf-8", errors="replace")


class StreamDecoder:
    """Incremental UTF-8 decoding of one sequence's tokens."""

    __slots__ = ("_decoder", "_held", "_tokenizer")

    def __init__(self, tokenizer: LlamaCppTokenizer) -> None:
        self._tokenizer = tokenizer
        # errors="replace" matches LlamaCppTokenizer.decode; the incremental decoder keeps an
        # incomplete trailing character buffered instead of replacing it.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = False
        """The decoder holds the start of a character."""

    def feed(self, token: int) -> str:
        if not self._held:
            # Most pieces are whole text: what the decoder would give, without it.
            text = self._tokenizer.text(token)
            if text is not None:
                return text
        text = self._decoder.decode(self._tokenizer.piece(token))
        self._held = bool(self._decoder.getstate()[0])
        return text

    def flush(self) -> str:
        """Whatever is still buffered (an incomplete character becomes U+FFFD)."""
        self._held = False
        return self._decoder.decode(b"", final=True)


def _meta_string(model: Any, key: bytes) -> str | None:
    size = 1 << 14
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = int(llama_cpp.llama_model_meta_val_str(model, key, buf, size))
        if n < 0:
            return None
        if n < size:
            return buf.raw[:n].decode("utf-8", errors="replace")
        size = n + 1
    return None


class VocabFile:
    """The tokenizer of a GGUF file without its weights (``vocab_only``): the gateway's copy when
    the model itself runs in an engine process. Milliseconds to load, a few MB of memory."""

    def __init__(self, path: str) -> None:
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = llama_cpp.llama_model_load_from_file(path.encode("utf-8"), params)
        if not model:
            raise EngineFailure(f"Cannot read the vocabulary of {path}.")
        self._model = model
        self.tokenizer = LlamaCppTokenizer(model, llama_cpp.llama_model_get_vocab(model))

    def close(self) -> None:
        if self._model:
            self.tokenizer.close()
            llama_cpp.llama_model_free(self._model)
            self._model = None
