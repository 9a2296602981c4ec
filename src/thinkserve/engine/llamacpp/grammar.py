"""Constrained decoding for the llama.cpp worker: when a sequence's ``Constraint`` applies, and
how a token is drawn under it (worker thread only).

Checking the whole vocabulary against a grammar costs more than a small model's decode step
(``docs/benchmarks.md``), so a token is drawn the way llama.cpp's own ``common_sampler`` does it:

1. the request's ordinary sampling chain picks a token from the logits;
2. only that token is checked against the grammar: if it may continue it, it is taken;
3. otherwise the grammar masks the whole vocabulary and the chain picks again among what is left.

Both the grammar and the chain then ``accept`` the token (penalties, the grammar's stacks). Once
the grammar is complete only end-of-generation tokens pass it, so the sequence ends there.

Special tokens never pass (``LlamaCppTokenizer.special_ids``): the grammar judges a token by its
text, and the single token ``<tool_call>`` spells text a JSON string may hold. A tiny model once
wrote it as a location; a ``</tool_call>`` sampled there would end the call in the parser.
"""

from __future__ import annotations

import ctypes
import logging
import math
import re
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.llamacpp.sampler import build_sampler, free_sampler
from thinkserve.engine.protocol import START_WINDOW, Constraint, EngineRequest

# llama_token_data's layout: int32 id, float logit, float p.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
_DATA_P = ctypes.POINTER(llama_cpp.llama_token_data)
log = logging.getLogger(__name__)


class ConstraintState:
    """Whether the grammar applies yet, and the samplers that enforce it once it does.

    Up to three phases: waiting for the marker (``</think>``), then, for a lazy constraint,
    waiting for its trigger (``<tool_call>``) or its start pattern, then ``active``::

        Constraint(g, after_token=151668, trigger="<tool_call>")
        "Let me see.</think>" -> marker seen; "\\n\\nI will check.\\n" -> still free;
        "<tool_call>" -> active: the next sampled token follows ``g``
    """

    __slots__ = (
        "_all",
        "_answer",
        "_banned",
        "_ids",
        "_off",
        "_one",
        "_past_marker",
        "_pattern",
        "_pending",
        "_tail",
        "active",
        "chain",
        "constraint",
        "grammar",
    )

    def __init__(self, constraint: Constraint) -> None:
        self.constraint = constraint
        self._past_marker = constraint.immediate
        self.active = self._past_marker and not constraint.lazy
        self.grammar: Any = None
        self.chain: Any = None
        self._tail = ""
        """The end of the output, where a marker or a trigger may be half written."""
        self._pattern = None if constraint.start_pattern is None else re.compile(constraint.start_pattern)
        self._answer = ""
        """The output past the marker, while the start pattern may still match it."""
        self._pending = ""
        """Output the grammar must take in before its first token (the rest of the trigger's
        token, or the start pattern's match)."""
        self._off = False
        self._all: npt.NDArray[Any] = np.zeros(0, _TOKEN_DATA)
        self._ids: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self._one = np.zeros(1, _TOKEN_DATA)
        self._banned: npt.NDArray[np.int32] = np.zeros(0, np.int32)

    def saw(self, token: int, text: str) -> None:
        """A token joined the sequence (sampled or injected): the marker, then the trigger or the
        start pattern if there are any, switch the grammar on from the next sampled token."""
        if self.active or self._off:
            return
        c = self.constraint
        if not self._past_marker:
            if c.after_token is not None:
                if token != c.after_token:
                    return
                text = ""
            elif c.after_text is not None:
                self._tail += text
                at = self._tail.find(c.after_text)
                if at < 0:
                    self._tail = self._tail[-len(c.after_text) :]
                    return
                # Only what follows the marker may fire the grammar.
                text = self._tail[at + len(c.after_text) :]
            self._past_marker = True
            self._tail = ""
            if not c.lazy:
                self.active = True
                return
        if self._pattern is not None and self._starts(text):
            return
        if c.trigger is not None:
            self._tail += text
            at = self._tail.find(c.trigger)
            if at < 0:
                self._tail = self._tail[-len(c.trigger) :]
                return
            self._fire(self._tail[at + len(c.trigger) :])

    def _starts(self, text: str) -> bool:
        """Whether the start pattern matched the answer so far (and the grammar is on)."""
        assert self._pattern is not None
        self._answer += text
        match = self._pattern.match(self._answer)
        if match is not None:
            self._fire(self._answer[match.start(1) if match.re.groups else match.start() :])
            return True
        if len(self._answer) > START_WINDOW:
            self._pattern = None
            self._answer = ""
        return False

    def _fire(self, pending: str) -> None:
        self._pending = pending
        self._tail = self._answer = ""
        self._pattern = None
        self.active = True

    def ready(
        self,
        request: EngineRequest,
        vocab: Any,
        n_vocab: int,
        penalty_last_n: int,
        special_ids: tuple[int, ...] = (),
    ) -> bool:
        """Build the grammar and the chain on first use (``special_ids``: tokens never to draw
        under it, ``LlamaCppTokenizer.special_ids``); raises ``EngineFailure`` for a grammar
        llama.cpp cannot parse. False (and inactive from then on) when the text after a trigger
        already breaks the grammar: the output is past saving, and the sequence goes on freely
        (the tool stage gives a malformed call back as text) rather than failing."""
        if self.grammar is not None:
            return True
        grammar = llama_cpp.llama_sampler_init_grammar(vocab, self.constraint.grammar.encode(), b"root")
        if not grammar:
            raise EngineFailure("The grammar of this request could not be parsed.")
        self.grammar = grammar
        self.chain = build_sampler(request, n_vocab, penalty_last_n)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._banned = np.array(special_ids, dtype=np.int32)
        self._all = np.zeros(n_vocab, _TOKEN_DATA)
        pending, self._pending = self._pending, ""
        if pending and not self._feed(vocab, pending):
            log.warning("the text after the grammar's trigger breaks it; decoding goes on unconstrained")
            self.free()
            self.active = False
            self._off = True
            return False
        return True

    def _feed(self, vocab: Any, text: str) -> bool:
        """Accept ``text`` into the grammar, as tokens (the only way in through llama.cpp's API;
        any tokenization spells the same characters); False if the grammar refuses it."""
        data = text.encode()
        buf = (llama_cpp.llama_token * (len(data) + 8))()
        n = int(llama_cpp.llama_tokenize(vocab, data, len(data), buf, len(buf), False, True))
        for token in buf[: max(n, 0)]:
            if not self._allows(token):
                return False
            llama_cpp.llama_sampler_accept(self.grammar, token)
        return True

    def _allows(self, token: int) -> bool:
        one = self._one
        one["id"][0] = token
        one["logit"][0] = 0.0
        single = llama_cpp.llama_token_data_array(
            data=one.ctypes.data_as(_DATA_P), size=1, selected=-1, sorted=False
        )
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(single))
        return math.isfinite(float(one["logit"][0]))

    def sample(self, logits: npt.NDArray[np.float32]) -> int:
        """The next token under the grammar (after ``ready``); ``logits`` is this step's row,
        which it may change (special tokens to -inf)."""
        if len(self._banned):
            logits[self._banned] = -np.inf
        token = self._pick(logits, masked=False)
        if not self._allows(token):
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
