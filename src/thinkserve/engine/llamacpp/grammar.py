"""Constrained decoding for the llama.cpp worker: when a sequence's ``Constraint`` applies, and
the sampler chain that enforces it (worker thread only).

The chain puts llama.cpp's grammar sampler first, on the full vocabulary, then the request's own
sampling (``sampler.build_sampler``): the grammar masks every token that cannot continue it, and
the usual top-k / temperature / top-p draw picks among the rest. Once the grammar is complete only
end-of-generation tokens are left, so the sequence ends there. The chain's ``accept`` (inside
``llama_sampler_sample``) advances the grammar with each sampled token.
"""

from __future__ import annotations

from typing import Any

import llama_cpp

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.llamacpp.sampler import build_sampler, free_sampler
from thinkserve.engine.protocol import Constraint, EngineRequest


class ConstraintState:
    """Whether the grammar applies yet, and its chain once built."""

    __slots__ = ("_tail", "active", "chain", "constraint")

    def __init__(self, constraint: Constraint) -> None:
        self.constraint = constraint
        self.active = constraint.immediate
        self.chain: Any = None
        self._tail = ""

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

    def sampler(self, request: EngineRequest, vocab: Any, n_vocab: int, penalty_last_n: int) -> Any:
        """The constrained chain (built on first use); raises ``EngineFailure`` for a grammar
        llama.cpp cannot parse."""
        if self.chain is None:
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, self.constraint.grammar.encode(), b"root")
            if not grammar:
                raise EngineFailure("The grammar of this request could not be parsed.")
            self.chain = build_sampler(request, n_vocab, penalty_last_n, first=grammar)
        return self.chain

    def free(self) -> None:
        if self.chain is not None:
            free_sampler(self.chain)
            self.chain = None
