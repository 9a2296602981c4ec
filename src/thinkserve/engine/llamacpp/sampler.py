"""llama.cpp sampler chains built from ``SamplingParams`` (worker thread only).

The chain follows transformers' order: penalties, then top-k, temperature, top-p and the seeded
draw; ``temperature <= 0`` is greedy. Plain greedy without penalties gets no chain at all: the
worker reads the argmax of the logits instead (``SeqState.greedy``).
"""

from __future__ import annotations

from typing import Any

import llama_cpp

from thinkserve.core.errors import EngineFailure
from thinkserve.engine.protocol import EngineRequest


def build_sampler(request: EngineRequest, n_vocab: int, penalty_last_n: int, *, first: Any = None) -> Any:
    """A new sampler chain for ``request`` (free it with ``free_sampler``); raises ``EngineFailure``.

    ``first``: a sampler that goes before all others and that the chain then owns (a grammar,
    ``engine.llamacpp.grammar``)."""
    sp, prompt, last_n = request.sampling, request.prompt, penalty_last_n
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    if not chain:
        if first is not None:
            llama_cpp.llama_sampler_free(first)
        raise EngineFailure("Cannot create a sampler.")
    if first is not None:
        llama_cpp.llama_sampler_chain_add(chain, first)
    if sp.repetition_penalty != 1.0:
        rep = llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, sp.repetition_penalty, 0.0, 0.0)
        # The repetition penalty covers the prompt too (as in transformers and vLLM); the
        # presence penalty below only sees generated tokens.
        for t in prompt[max(0, len(prompt) - last_n) :]:
            llama_cpp.llama_sampler_accept(rep, t)
        llama_cpp.llama_sampler_chain_add(chain, rep)
    if sp.presence_penalty != 0.0:
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, 1.0, 0.0, sp.presence_penalty)
        )
    if sp.temperature <= 0.0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    # transformers' order (temperature, top-k, top-p); top-k goes first because it commutes
    # with temperature and leaves the rest of the chain 20 candidates instead of the vocab.
    if sp.top_k > 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(sp.top_k))
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(sp.temperature))
    if sp.top_p < 1.0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(sp.top_p, 1))
    seed = llama_cpp.LLAMA_DEFAULT_SEED if sp.seed is None else sp.seed & 0xFFFFFFFF
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return chain


def free_sampler(chain: Any) -> None:
    llama_cpp.llama_sampler_free(chain)
