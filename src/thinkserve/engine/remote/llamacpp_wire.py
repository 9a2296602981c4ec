"""llama.cpp server's ``/completion`` at the token level (pure; imports core, engine.remote.wire).

The request sends the prompt as token ids and asks for the sampled ids back::

    POST /completion
    {"prompt": [151644, 872, 198], "n_predict": 53, "temperature": 0.6, "top_p": 0.95,
     "top_k": 20, "min_p": 0.0, "repeat_penalty": 1.0, "presence_penalty": 0.0, "seed": -1,
     "stream": true, "return_tokens": true, "cache_prompt": true}

and reads server-sent events; the last one has ``"stop": true``::

    data: {"index": 0, "content": "Hi", "tokens": [13048], "stop": false, "id_slot": 0,
           "tokens_predicted": 1, "tokens_evaluated": 3}
    data: {"index": 0, "content": "", "tokens": [], "stop": true, "stop_type": "eos",
           "tokens_predicted": 2, "tokens_cached": 4, "timings": {"cache_n": 0, "prompt_n": 3, ...}}

``stop_type`` is ``eos``, ``word`` (a stop string), ``limit`` (``n_predict``, or the slot's
context ran out) or ``none``. The prompt tokens reused from the slot's cache are
``timings.cache_n``; servers without it report 0 (their ``tokens_cached`` is ``n_past`` at the
end, generated tokens included, so it says nothing of the prompt).

The server sends no event for a token whose bytes end inside a UTF-8 character: the next event's
``content`` carries them, its ``tokens`` only its own id, and ``tokens_predicted`` counts both
(``engine.remote.pieces`` recovers the ids). At the end of a completion such a token is lost, so
``n_predict`` asks for ``LOOKAHEAD`` tokens more than needed: the character is completed and the
sequence drops what lies past its limit.

Asked with ``"stream": false``, it answers one object like the last event, with every token in
``tokens`` (those ending inside a character too: nothing to recover, nothing asked ahead).
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

from thinkserve.core.types import SamplingParams
from thinkserve.engine.remote.wire import Chunk, Finish, WireError, error_message, int_or_none, token_list

_FINISH: dict[object, Finish] = {"eos": "stop", "word": "stop", "limit": "length", "none": "length"}

LOOKAHEAD = 3
"""Tokens past ``max_tokens``: a UTF-8 character is at most 4 bytes, so at most 3 tokens wait for
the one that completes it."""


class LlamaCppWire:
    """``/completion`` with ``prompt: [ids]`` and ``return_tokens``."""

    name = "llamacpp"
    path = "/completion"
    done_line = None

    def body(
        self, prompt: Seq[int], max_tokens: int, sampling: SamplingParams, model: str | None, *, stream: bool
    ) -> Any:
        return {
            "prompt": list(prompt),
            # A whole answer lists every id: only a stream needs the tokens ahead.
            "n_predict": max_tokens + LOOKAHEAD if stream else max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": max(sampling.top_k, 0),
            # The server's own defaults add min-p 0.05; thinkserve's sampling has none.
            "min_p": 0.0,
            "repeat_penalty": sampling.repetition_penalty,
            "presence_penalty": sampling.presence_penalty,
            # The server seeds a 32-bit RNG; -1 asks it for a random seed.
            "seed": sampling.seed & 0xFFFFFFFF if sampling.seed is not None else -1,
            "stream": stream,
            "return_tokens": True,
            "cache_prompt": True,
        }

    def chunk(self, data: Any) -> Chunk:
        message = error_message(data)
        if message is not None:
            raise WireError(message)
        tokens = token_list(data.get("tokens"))
        if not data.get("stop"):
            content = data.get("content")
            text = content if isinstance(content, str) else ""
            return Chunk(tokens, generated=int_or_none(data.get("tokens_predicted")), text=text)
        reason = data.get("stop_type", "eos")
        finish = _FINISH.get(reason)
        if finish is None:
            raise WireError(f"unknown stop_type {reason!r}")
        timings = data.get("timings")
        cached = int_or_none(timings.get("cache_n")) if isinstance(timings, dict) else None
        return Chunk(tokens, finish, cached if cached is not None else 0)
