"""Tokenizing a prompt by its parts, the parts remembered (pure; imports core).

llama.cpp tokenizes a text with special tokens in two steps: it cuts the text at every special
token (``tokenizer_st_partition``: control, user-defined and unknown tokens), then tokenizes each
piece of text between them on its own. So the ids of a piece do not depend on what surrounds it,
and a prompt can be tokenized piece by piece with the pieces' ids remembered::

    "<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\nHi<|im_end|>..."
     ^ special    ^ piece (remembered: the same in every request)  ^ special      ^ piece

Every request repeats most of its pieces: the template's own (``\\n``, ``assistant\\n``), a
system prompt, the earlier turns of its conversation. Tokenizing is the costliest step of
rendering a prompt (llama.cpp's BPE merges look ranks up in a tree of strings), and the remote
engine pays it on the gateway for every request.

The ids are exactly those of one call over the whole text when the cut is the same as llama.cpp's,
which ``Fragments.of`` checks once per vocabulary: no special token strips the whitespace around
it (``lstrip``/``rstrip`` attributes), and no special text contains another or overlaps it, so
that cutting at the leftmost occurrences finds llama.cpp's longest-first ones. Otherwise it
answers None and the tokenizer tokenizes whole texts, as always.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

from thinkserve.core.patterns import any_of

MAX_PIECE = 16_384
"""Longer pieces (characters) are tokenized every time, not remembered."""
MAX_IDS = 1_000_000
"""Ids remembered over all pieces (about 40 MB at most); the least recently used go first."""


class Fragments:
    """``encode(text)`` as llama.cpp's ``tokenize(text, parse_special=True)``, piece by piece."""

    def __init__(self, specials: Mapping[str, int], encode: Callable[[str], list[int]]) -> None:
        """``specials``: every special token's text and id; ``encode``: tokenize a text."""
        self._ids = dict(specials)
        self._pattern = _pattern(self._ids)
        self._encode = encode
        self._pieces: OrderedDict[str, list[int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        """Engine worker threads tokenize too."""

    @classmethod
    def of(
        cls, specials: Mapping[str, int], stripping: bool, encode: Callable[[str], list[int]]
    ) -> Fragments | None:
        """Piece-wise tokenizing for a vocabulary, or None when it would not give the same ids
        (``stripping``: some special token strips the whitespace beside it)."""
        if stripping or "" in specials or _overlapping(list(specials)):
            return None
        return cls(specials, encode)

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        pos = 0
        if self._pattern is not None:
            for match in self._pattern.finditer(text):
                if match.start() > pos:
                    out += self._piece(text[pos : match.start()])
                out.append(self._ids[match.group()])
                pos = match.end()
        if pos < len(text):
            out += self._piece(text[pos:] if pos else text)
        return out

    def _piece(self, piece: str) -> list[int]:
        pieces = self._pieces
        with self._lock:
            ids = pieces.get(piece)
            if ids is not None:
                pieces.move_to_end(piece)
                return ids
        ids = self._encode(piece)
        if len(piece) <= MAX_PIECE:
            with self._lock:
                if piece not in pieces:
                    pieces[piece] = ids
                    self._held += len(ids)
                    while self._held > MAX_IDS:
                        _, dropped = pieces.popitem(last=False)
                        self._held -= len(dropped)
        return ids


def _overlapping(texts: list[str]) -> bool:
    """Whether a text contains another, or ends with the start of one (itself included)."""
    if any(b in a for a in texts for b in texts if a != b):
        return True
    starts = {t[:n] for t in texts for n in range(1, len(t))}
    return any(t[n:] in starts for t in texts for n in range(1, len(t)))


def _pattern(ids: Mapping[str, int]) -> re.Pattern[str] | None:
    """A regex of every special text, as a trie (no flat alternation: some vocabularies hold
    hundreds of special tokens sharing a prefix, which it would try one by one)."""
    return any_of(ids)
