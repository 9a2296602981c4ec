"""Constrained decoding for the llama.cpp worker: when a sequence's ``Constraint`` applies, and
how a token is drawn under it (worker thread only).

Checking the whole vocabulary against a grammar costs more than a small model's decode step
(``docs/benchmarks.md``), so a token is drawn the way llama.cpp's own ``common_sampler`` does it:

1. the request's ordinary sampling chain picks a token from the logits;
2. only that token is checked against the grammar: if it may continue it, it is taken;
3. otherwise the grammar masks the whole vocabulary and the chain picks again among what is left.

Both the grammar and the chain then ``accept`` the token (penalties, the grammar's stacks). Once
the grammar is complete only end-of-generation tokens pass it, so the sequence ends there.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.llamacpp.sampler import build_sampler, free_sampler
from thinkserve.engine.protocol import Constraint, EngineRequest

# llama_token_data's layout: int32 id, float logit, float p.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
_DATA_P = ctypes.POINTER(llama_cpp.llama_token_data)


class ConstraintState:
    """Whether the grammar applies yet, and the samplers that enforce it once it does."""

    __slots__ = ("_all", "_ids", "_one", "_tail", "active", "chain", "constraint", "grammar")

    def __init__(self, constraint: Constraint) -> None:
        self.constraint = constraint
        self.active = constraint.immediate
        self.grammar: Any = None
        self.chain: Any = None
        self._tail = ""
        self._all: npt.NDArray[Any] = np.zeros(0, _TOKEN_DATA)
        self._ids: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self._one = np.zeros(1, _TOKEN_DATA)

    def saw(self, token: int, text: str) -> None:
        """A token joined the sequence (sampled or injected): the marker switches the grammar on
        from the next sampled token."""
        if self.active:
            return
        c = self.constraint
        if c.after_token is not None:
            self.active = token == c.after_token
        elif c.after_text is not None:
            self._tail = (self._tail + text)[-(len(c.after_text) + len(text)) :]
            self.active = c.after_text in self._tail

    def ready(self, request: EngineRequest, vocab: Any, n_vocab: int, penalty_last_n: int) -> None:
        """Build the grammar and the chain on first use; raises ``EngineFailure`` for a grammar
        llama.cpp cannot parse."""
        if self.grammar is not None:
            return
        grammar = llama_cpp.llama_sampler_init_grammar(vocab, self.constraint.grammar.encode(), b"root")
        if not grammar:
            raise EngineFailure("The grammar of this request could not be parsed.")
        self.grammar = grammar
        self.chain = build_sampler(request, n_vocab, penalty_last_n)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._all = np.zeros(n_vocab, _TOKEN_DATA)

    def sample(self, logits: npt.NDArray[np.float32]) -> int:
        """The next token under the grammar (after ``ready``)."""
        token = self._pick(logits, masked=False)
        one = self._one
        one["id"][0] = token
        one["logit"][0] = 0.0
        single = llama_cpp.llama_token_data_array(
            data=one.ctypes.data_as(_DATA_P), size=1, selected=-1, sorted=False
        )
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(single))
        if not math.isfinite(float(one["logit"][0])):
            token = self._pick(logits, masked=True)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        llama_cpp.llama_sampler_accept(self.chain, token)
        return token

    def _pick(self, logits: npt.NDArray[np.float32], *, masked: bool) -> int:
        candidates = self._all
        candidates["id"] = self._ids
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = llama_cpp.llama_token_data_array(
            data=candidates.ctypes.data_as(_DATA_P), size=len(candidates), selected=-1, sorted=False
        )
        if masked:
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(array))
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(array))
        if array.selected < 0:
            raise EngineFailure("No token can continue the grammar of this request.")
        return int(array.data[array.selected].id)

    def free(self) -> None:
        if self.chain is not None:
            free_sampler(self.chain)
            self.chain = None
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
