"""Token ids a server withheld, recovered from the bytes it sent in their place (pure).

llama.cpp server sends no event for a sampled token whose bytes end inside a UTF-8 character (a
character the vocabulary spells in several byte-level tokens: rare CJK, emoji). The event of the
token that completes the character carries the held bytes in its ``content`` but only its own id
in ``tokens``; ``tokens_predicted`` counts them all::

    data: {"content": "Hi ", "tokens": [13048], "tokens_predicted": 1, ...}
    (nothing for token 2, b"\\xf0\\x9f\\x98")
    data: {"content": "😀", "tokens": [222], "tokens_predicted": 3, ...}

``recover`` finds the ids whose pieces spell the held bytes in an index of every token's piece.
Byte-level vocabularies hold each byte string once, so one withheld token is recovered exactly;
several are split the first way the index allows (any split spells the same text).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence as Seq

MAX_PIECE = 64
"""Bytes: longer pieces are left out of the index (no token that long ends mid-character)."""


class PieceIndex:
    """Every token's piece (its bytes) to its id: ``PieceIndex.build(tokenizer.token_bytes, n_vocab)``."""

    __slots__ = ("_ids", "_piece")

    def __init__(self, ids: dict[bytes, int], piece: Callable[[int], bytes]) -> None:
        self._ids = ids
        self._piece = piece

    @classmethod
    def build(cls, piece: Callable[[int], bytes], n_vocab: int) -> PieceIndex:
        """One pass over the vocabulary (about 0.3 s for 150k tokens: run it off the event loop)."""
        ids: dict[bytes, int] = {}
        for token in range(n_vocab):
            data = piece(token)
            if data and len(data) <= MAX_PIECE:
                ids.setdefault(data, token)
        return cls(ids, piece)

    def piece(self, token: int) -> bytes:
        return self._piece(token)

    def token(self, data: bytes) -> int | None:
        return self._ids.get(data)


def recover(index: PieceIndex, text: str, tokens: Seq[int], missing: int) -> list[int] | None:
    """The ``missing`` ids before ``tokens`` whose pieces, with theirs, spell ``text``; None when
    no split fits (the text is not what those tokens spell)."""
    data = text.encode("utf-8")
    tail = b"".join(index.piece(t) for t in tokens)
    if missing < 1 or not data.endswith(tail):
        return None
    return _split(index, data[: len(data) - len(tail)], missing)


def _split(index: PieceIndex, data: bytes, parts: int) -> list[int] | None:
    """``data`` as exactly ``parts`` pieces of the index (depth first, longest first piece first)."""
    if parts == 1:
        token = index.token(data)
        return [token] if token is not None else None
    for end in range(min(len(data) - parts + 1, MAX_PIECE), 0, -1):
        token = index.token(data[:end])
        if token is None:
            continue
        rest = _split(index, data[end:], parts - 1)
        if rest is not None:
            return [token, *rest]
    return None
