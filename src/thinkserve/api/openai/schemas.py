"""Wire models of the OpenAI-compatible chat API as Model Studio serves it (imports nothing).

Fields follow Model Studio's "OpenAI compatible" reference; its extras (``enable_thinking``,
``thinking_budget``, ``top_k``...) are top-level keys, which is where the Python SDK's
``extra_body`` and the Node SDK's extra arguments put them. Unknown keys are tolerated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Wire):
    type: StrictStr
    text: StrictStr | None = None


class ChatMessage(_Wire):
    role: Literal["system", "user", "assistant", "tool"]
    content: StrictStr | list[ContentPart] | None = None
    reasoning_content: StrictStr | None = None
    name: StrictStr | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: StrictStr | None = None


class StreamOptions(_Wire):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(_Wire):
    model: StrictStr
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    enable_thinking: StrictBool | None = None
    thinking_budget: StrictInt | None = None
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    temperature: StrictFloat | StrictInt | None = None
    top_p: StrictFloat | StrictInt | None = None
    top_k: StrictInt | None = None
    presence_penalty: StrictFloat | StrictInt | None = None
    repetition_penalty: StrictFloat | StrictInt | None = None
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    n: StrictInt | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: StrictBool | None = None
    response_format: dict[str, Any] | None = None
    thinkserve: Any = None
    """thinkserve's own options (``api.tools``): ``{"constrain_after_thinking": true}``."""
    enable_search: StrictBool | None = None
    search_options: dict[str, Any] | None = None
    logprobs: StrictBool | None = None
