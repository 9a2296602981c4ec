"""Whether a request thinks, from the catalogue's rules (imports core, catalogue).

How much it may think is ``thinking.budget``.

Messages are Model Studio's own, so code matching on them behaves the same against the cloud.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ChatRequest, Message

_DIRECTIVE = re.compile(r"/(no_)?think\b")

THINKING_ONLY = "The value of the enable_thinking parameter is restricted to True."
STREAM_ONLY = "This model only support stream mode, please enable the stream parameter to access the model."
NON_STREAM_THINKING = "parameter.enable_thinking must be set to false for non-streaming calls"


def latest_directive(messages: Sequence[Message]) -> bool | None:
    """The last ``/think`` (True) or ``/no_think`` (False) in the user turns, if any."""
    found: bool | None = None
    for m in messages:
        if m.role != "user":
            continue
        for match in _DIRECTIVE.finditer(m.content):
            found = match.group(1) is None
    return found


def decide_thinking(spec: ModelSpec, request: ChatRequest) -> bool:
    """Whether this request thinks; raises ``InvalidParameter`` where Model Studio refuses it."""
    if spec.mode == "thinking_only":
        if request.enable_thinking is False:
            raise InvalidParameter(THINKING_ONLY, param="enable_thinking")
        thinking = True
    else:
        thinking = spec.thinking_default if request.enable_thinking is None else request.enable_thinking
        # The soft switch only turns thinking off (or back on) when thinking is enabled at all.
        if thinking and spec.soft_switch and latest_directive(request.messages) is False:
            thinking = False
    if thinking and not request.stream and not spec.non_stream:
        message = STREAM_ONLY if spec.mode == "thinking_only" else NON_STREAM_THINKING
        raise InvalidParameter(message, param="stream")
    return thinking
