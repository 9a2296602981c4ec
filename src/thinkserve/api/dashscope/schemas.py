"""Wire models of Model Studio's native (DashScope) generation request (imports nothing).

The body the ``dashscope`` SDK and the page's curl examples send to
``POST /api/v1/services/aigc/text-generation/generation``::

    {"model": "qwen-plus",
     "input": {"messages": [{"role": "user", "content": "你是誰?"}]},
     "parameters": {"result_format": "message", "enable_thinking": true, "incremental_output": true}}

``input.prompt`` may replace (or follow) ``input.messages``. The SDK never puts ``stream`` in
``parameters`` (headers ask for streaming), raw HTTP may. Unknown keys are tolerated, as the cloud does;
known-but-unserved ones are refused by ``convert``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Wire):
    """A part of a list content: ``{"text": ...}`` (DashScope) or ``{"type": "text", "text": ...}``.

    Any other part (``{"image": url}``, ``{"type": "image_url", ...}``) is kept to be refused by name.
    """

    type: StrictStr | None = None
    text: StrictStr | None = None


class Message(_Wire):
    role: Literal["system", "user", "assistant", "tool"]
    content: StrictStr | list[ContentPart] | None = None
    reasoning_content: StrictStr | None = None
    name: StrictStr | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: StrictStr | None = None
    partial: StrictBool | None = None


class Input(_Wire):
    messages: list[Message] | None = None
    prompt: StrictStr | None = None
    history: list[Any] | None = None


# Numbers: JSON gives ints for whole numbers, so float parameters take both.
Number = StrictFloat | StrictInt


class Parameters(_Wire):
    result_format: StrictStr | None = None
    incremental_output: StrictBool | None = None
    stream: StrictBool | None = None
    enable_thinking: StrictBool | None = None
    thinking_budget: StrictInt | None = None
    max_tokens: StrictInt | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    top_k: StrictInt | None = None
    seed: StrictInt | None = None
    repetition_penalty: Number | None = None
    presence_penalty: Number | None = None
    n: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: StrictBool | None = None
    thinkserve: Any = None
    """thinkserve's own options (``api.tools``): ``{"constrain_after_thinking": true}``."""
    enable_search: StrictBool | None = None
    search_options: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None
    translation_options: dict[str, Any] | None = None


class GenerationRequest(_Wire):
    # Both optional here so that their absence gets Model Studio's own codes (convert.EmptyModel...).
    model: StrictStr | None = None
    input: Input | None = None
    parameters: Parameters | None = None
