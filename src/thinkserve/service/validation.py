"""Checks of a request against the served model's limits, before anything runs (imports core,
catalogue).

Range checks that need no model (sampling parameters) are the dialects' (``api.params``); whether
the request may think is ``thinking.decision``; its budget is ``thinking.budget``.
"""

from __future__ import annotations

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ChatRequest


def check_messages(request: ChatRequest) -> None:
    if not request.messages:
        raise InvalidParameter("messages must not be empty", param="messages")


def max_tokens(spec: ModelSpec, request: ChatRequest) -> int | None:
    """The validated ``max_tokens`` (None when absent)."""
    value = request.max_tokens
    if value is not None and not 1 <= value <= spec.max_output:
        raise InvalidParameter(f"Range of max_tokens should be [1, {spec.max_output}]", param="max_tokens")
    return value


def check_input_length(spec: ModelSpec, prompt_tokens: int, context_length: int) -> None:
    """The prompt must leave room for one sampled token and fit the model's input cap."""
    max_input = min(spec.max_input, context_length - 1)
    if not 1 <= prompt_tokens <= max_input:
        raise InvalidParameter(f"Range of input length should be [1, {max_input}]", param="messages")
