"""vLLM's OpenAI completions API at the token level (pure; imports core and engine.remote.wire).

The request sends the prompt as token ids and asks for the sampled ids back::

    POST /v1/completions
    {"model": "Qwen/Qwen3-8B", "prompt": [151644, 872, 198], "max_tokens": 50,
     "temperature": 0.6, "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.0,
     "presence_penalty": 0.0, "stream": true, "stream_options": {"include_usage": true},
     "return_token_ids": true}

and reads server-sent events, ``data: [DONE]`` last::

    data: {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": "Hi",
           "token_ids": [13048], "finish_reason": null, "prompt_token_ids": [151644, 872, 198]}]}
    data: {"choices": [{"index": 0, "text": "", "token_ids": [151645], "finish_reason": "stop",
           "stop_reason": null}]}
    data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
           "prompt_tokens_details": {"cached_tokens": 0}}}
    data: [DONE]

Asked with ``"stream": false`` (and no ``stream_options``), it answers one object, read as one
chunk: the choice holds every id (``token_ids``) and the finish reason, beside the usage.

``token_ids`` (vLLM 0.10.2 and later) holds the delta's ids; the end-of-sequence token is among
them. ``prompt_tokens_details.cached_tokens`` is there only when the server runs with
``--enable-prompt-tokens-details``; without it ``cached_tokens`` reads 0.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

from thinkserve.core.types import SamplingParams
from thinkserve.engine.remote.wire import Chunk, Finish, WireError, error_message, int_or_none, token_list

_FINISH: dict[object, Finish] = {"stop": "stop", "length": "length"}


class VllmWire:
    """``/v1/completions`` with ``prompt: [ids]`` and ``return_token_ids``."""

    name = "vllm"
    path = "/v1/completions"
    done_line = "[DONE]"

    def body(
        self, prompt: Seq[int], max_tokens: int, sampling: SamplingParams, model: str | None, *, stream: bool
    ) -> Any:
        body: dict[str, Any] = {
            "prompt": list(prompt),
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            # vLLM reads -1 (and, from 0.8, 0) as "no top-k"; -1 works on every version.
            "top_k": sampling.top_k if sampling.top_k > 0 else -1,
            "repetition_penalty": sampling.repetition_penalty,
            "presence_penalty": sampling.presence_penalty,
            "stream": stream,
            "return_token_ids": True,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if model is not None:
            body["model"] = model
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return body

    def chunk(self, data: Any) -> Chunk:
        message = error_message(data)
        if message is not None:
            raise WireError(message)
        cached: int | None = None
        usage = data.get("usage")
        if isinstance(usage, dict):
            details = usage.get("prompt_tokens_details")
            cached = int_or_none(details.get("cached_tokens")) if isinstance(details, dict) else None
            if cached is None:
                cached = 0  # the server does not report it (no --enable-prompt-tokens-details)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            return Chunk(cached_tokens=cached)
        choice = choices[0]
        if not isinstance(choice, dict):
            raise WireError("a choice is not an object")
        if "token_ids" not in choice:
            raise WireError("the server sent no token_ids: it needs vLLM 0.10.2 or later (return_token_ids)")
        reason = choice.get("finish_reason")
        finish = _FINISH.get(reason)
        if reason is not None and finish is None:
            # "abort", "error": the request ended without a usable result.
            raise WireError(f"the generation ended with finish_reason {reason!r}")
        return Chunk(token_list(choice.get("token_ids")), finish, cached)
