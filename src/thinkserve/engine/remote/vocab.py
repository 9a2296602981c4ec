"""The gateway's copy of the upstreams' tokenizer (imports core, engine.protocol, engine.llamacpp
for GGUF files; ``tokenizers`` and engine.vllm.tokenizer's byte alphabet for Hugging Face files).

The upstreams take and return token ids, so the gateway renders and tokenizes prompts and
detokenizes replies itself, with the model's own tokenizer, from one of::

    tokenizer = "/models/Qwen3-8B-Q4_K_M.gguf"        # a GGUF file: llama.cpp, vocabulary only
    tokenizer = "/models/Qwen3-8B/"                   # an HF model directory: tokenizer.json,
                                                      # tokenizer_config.json (chat template, eos),
                                                      # generation_config.json (eos ids) if present
    tokenizer = "/models/Qwen3-8B/tokenizer.json"     # the same, naming the file

It must be the tokenizer of the model the upstreams serve: token ids mean nothing across
vocabularies. HF files need the ``tokenizers`` package (``pip install 'thinkserve[hf]'``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from thinkserve.core.errors import ConfigError
from thinkserve.engine.protocol import Tokenizer
from thinkserve.engine.vllm.tokenizer import byte_decoder

# End-of-turn texts that end generation besides the declared EOS, as llama.cpp also treats them.
END_TEXTS = frozenset(
    ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|return|>")
)


class Decoder(Protocol):
    """Incremental detokenization of one sequence."""

    def feed(self, token: int) -> str: ...

    def flush(self) -> str: ...


class RemoteTokenizer(Tokenizer, Protocol):
    """A ``Tokenizer`` that also tells where generation ends and decodes a stream."""

    @property
    def n_vocab(self) -> int: ...

    def is_eog(self, token: int) -> bool: ...

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one token, a part of a UTF-8 character included (``b"\\xe4\\xbd"``)."""
        ...


@dataclass(frozen=True, slots=True)
class Vocab:
    """A loaded tokenizer, a decoder factory for its streams, and how to free it."""

    tokenizer: RemoteTokenizer
    decoder: Callable[[], Decoder]
    close: Callable[[], None] | None = None


def load_vocab(source: str) -> Vocab:
    """Load the tokenizer named by ``source``; raises ``ConfigError`` when it cannot."""
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        return _gguf(path)
    folder = path if path.is_dir() else path.parent
    file = folder / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(
            f"tokenizer {source}: expected a GGUF file, a tokenizer.json or a folder holding one"
        )
    tokenizer = HfTokenizer.from_folder(file, folder)
    return Vocab(tokenizer, tokenizer.decoder)


def _gguf(path: Path) -> Vocab:
    if not path.is_file():
        raise ConfigError(f"tokenizer {path}: no such file")
    from thinkserve.core.errors import EngineFailure
    from thinkserve.engine.llamacpp.native import install_native_logging
    from thinkserve.engine.llamacpp.tokenizer import StreamDecoder, VocabFile

    install_native_logging()
    try:
        vocab = VocabFile(str(path))
    except EngineFailure as exc:
        raise ConfigError(str(exc)) from exc
    tokenizer = vocab.tokenizer
    return Vocab(tokenizer, lambda: StreamDecoder(tokenizer), vocab.close)


class HfTokenizer:
    """``tokenizer.json`` through the ``tokenizers`` library (``RemoteTokenizer``)."""

    def __init__(
        self, file: Path, *, template: str | None, bos: str, eos: str, eos_ids: Seq[int] = ()
    ) -> None:
        try:
            from tokenizers import Tokenizer as HfCore
        except ImportError as exc:
            raise ConfigError(
                "a tokenizer.json needs the tokenizers package: pip install 'thinkserve[hf]'"
            ) from exc
        self._core: Any = HfCore.from_file(str(file))
        # A second instance that leaves special-token text as text (encode(special=False)):
        # toggling the flag on one shared instance would race with other threads' encodes.
        self._plain: Any = HfCore.from_file(str(file))
        self._plain.encode_special_tokens = True
        added = self._core.get_added_tokens_decoder()
        self._controls = frozenset(t.content for t in added.values() if t.special)
        self._template = template
        self._bos, self._eos = bos, eos
        self._n_vocab = int(self._core.get_vocab_size(with_added_tokens=True))
        ends = {self._core.token_to_id(text) for text in (END_TEXTS & self._controls) | {eos}}
        self._eog = frozenset(t for t in (*ends, *eos_ids) if t is not None)
        self._added = frozenset(added)
        # GPT-2's byte-level alphabet (every byte one printable character), where the vocabulary
        # is spelled in it: a piece is then the bytes its characters stand for.
        self._alphabet = byte_decoder() if _byte_level(_read_json(file).get("decoder")) else None

    @classmethod
    def from_folder(cls, file: Path, folder: Path) -> HfTokenizer:
        config = _read_json(folder / "tokenizer_config.json")
        generation = _read_json(folder / "generation_config.json")
        template = _template(config, folder)
        eos_ids = generation.get("eos_token_id", [])
        eos_ids = [eos_ids] if isinstance(eos_ids, int) else [t for t in eos_ids if isinstance(t, int)]
        return cls(
            file,
            template=template,
            bos=_token_text(config.get("bos_token")),
            eos=_token_text(config.get("eos_token")),
            eos_ids=eos_ids,
        )

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def control_texts(self) -> frozenset[str]:
        return self._controls

    @property
    def chat_template(self) -> str | None:
        return self._template

    @property
    def bos_token(self) -> str:
        return self._bos

    @property
    def eos_token(self) -> str:
        return self._eos

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        core = self._core if special else self._plain
        return list(core.encode(text, add_special_tokens=False).ids)

    def decode(self, tokens: Seq[int]) -> str:
        return str(self._core.decode(list(tokens), skip_special_tokens=False))

    def token_id(self, text: str) -> int | None:
        ids = self.encode(text, special=True)
        return ids[0] if len(ids) == 1 and self.decode(ids) == text else None

    def is_eog(self, token: int) -> bool:
        return token in self._eog

    def token_bytes(self, token: int) -> bytes:
        text = self._core.id_to_token(token)
        if not isinstance(text, str):
            return b""
        if token in self._added:
            return text.encode("utf-8")
        alphabet = self._alphabet
        if alphabet is not None:
            if all(c in alphabet for c in text):
                return bytes(alphabet[c] for c in text)
            return text.encode("utf-8")
        if len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            return bytes.fromhex(text[3:5])  # SentencePiece's byte fallback
        return text.replace("\u2581", " ").encode("utf-8")

    def decoder(self) -> Decoder:
        return _HfDecoder(self._core)


class _HfDecoder:
    """``tokenizers``' own streaming decoder: holds back bytes of an incomplete character."""

    __slots__ = ("_core", "_stream")

    def __init__(self, core: Any) -> None:
        from tokenizers.decoders import DecodeStream

        self._core = core
        self._stream = DecodeStream(skip_special_tokens=False)

    def feed(self, token: int) -> str:
        text = self._stream.step(self._core, token)
        return text if isinstance(text, str) else ""

    def flush(self) -> str:
        return ""


def _byte_level(decoder: object) -> bool:
    """Whether tokenizer.json's ``decoder`` is (or holds) a ``ByteLevel`` one."""
    if not isinstance(decoder, dict):
        return False
    if decoder.get("type") == "ByteLevel":
        return True
    parts = decoder.get("decoders")
    return isinstance(parts, list) and any(_byte_level(d) for d in parts)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _template(config: dict[str, Any], folder: Path) -> str | None:
    """The chat template: ``chat_template.jinja`` beside the tokenizer, else the config's (a
    string, or a list of named templates of which ``default`` is the chat one)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text("utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _token_text(value: object) -> str:
    """``"<|im_end|>"`` or ``{"content": "<|im_end|>", ...}`` (older tokenizer_config files)."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else ""
