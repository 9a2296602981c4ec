"""The native API through the official ``dashscope`` SDK, the seed's examples unchanged.

Only ``dashscope.base_http_api_url`` and the API key differ from the seed page; ``print`` is
replaced by collecting what would be printed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import dashscope
import pytest
from dashscope import Generation as _Generation

from tests.api.dashscope_helpers import ENGINES, Target, serve_target
from tests.conftest import API_KEY, serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform.port import Principal
from thinkserve.platform.static_keys import StaticKeys
from thinkserve.service.generation import Runtime
from thinkserve.thinking import decision
from thinkserve.thinking.chat_format import ChatFormat

# The SDK types ``call`` as "response or generator" and messages as its own class: the seed's code
# passes dicts and knows which one it gets.
Generation: Any = _Generation


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    with serve_target(request.param) as t:
        # A module global of the SDK: monkeypatch restores it after the test.
        monkeypatch.setattr(dashscope, "base_http_api_url", t.live.dashscope_base)
        yield t


def quick_start_loop(completion: Any) -> tuple[str, str]:
    """The seed's quick-start / thinking_budget loop, verbatim but for print."""
    # 定義完整思考過程
    reasoning_content = ""
    # 定義完整回複
    answer_content = ""
    # 判斷是否結束思考過程並開始回複
    is_answering = False
    for chunk in completion:
        # 如果思考過程與回複皆為空白,則忽略
        if (
            chunk.output.choices[0].message.content == ""
            and chunk.output.choices[0].message.reasoning_content == ""
        ):
            pass
        else:
            # 如果當前為思考過程
            if (
                chunk.output.choices[0].message.reasoning_content != ""
                and chunk.output.choices[0].message.content == ""
            ):
                reasoning_content += chunk.output.choices[0].message.reasoning_content
            # 如果當前為回複
            elif chunk.output.choices[0].message.content != "":
                if not is_answering:
                    is_answering = True
                answer_content += chunk.output.choices[0].message.content
    return reasoning_content, answer_content


def test_seed_quick_start(target: Target) -> None:
    messages = [{"role": "user", "content": "你是誰?"}]
    completion = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=messages,
        result_format="message",
        enable_thinking=True,
        stream=True,
        incremental_output=True,
    )
    reasoning, answer = quick_start_loop(completion)
    assert reasoning and answer
    if target.script:
        assert (reasoning, answer) == (target.script.reasoning, target.script.answer)


def test_seed_enable_thinking_example_prints_usage(target: Target) -> None:
    """The page's "enable_thinking" example: truthiness checks, then ``print(chunk.usage)``."""
    messages = [{"role": "user", "content": "你是誰?"}]
    completion = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=messages,
        result_format="message",  # 設定結果格式為 message
        enable_thinking=True,  # 開啟思考過程
        stream=True,  # 開啟流式輸出
        incremental_output=True,  # 開啟增量輸出
    )
    reasoning_content = ""  # 完整思考過程
    answer_content = ""  # 完整回複
    chunk: Any = None
    for chunk in completion:
        message = chunk.output.choices[0].message
        if message.reasoning_content:
            reasoning_content += message.reasoning_content
        if message.content:
            answer_content += message.content
    usage = dict(chunk.usage)
    assert set(usage) == {
        "total_tokens",
        "input_tokens",
        "output_tokens",
        "output_tokens_details",
        "prompt_tokens_details",
    }
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert 0 < usage["output_tokens_details"]["reasoning_tokens"] < usage["output_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] >= 0
    assert chunk.output.choices[0].finish_reason == "stop"
    if target.script:
        assert reasoning_content == target.script.reasoning
        assert answer_content == target.script.answer
        # One token per character: the newlines inside the think block count, the tags do not.
        assert usage["output_tokens_details"]["reasoning_tokens"] == len(reasoning_content) + 2


def test_thinking_off(target: Target) -> None:
    completion = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=[{"role": "user", "content": "你是誰?"}],
        result_format="message",
        enable_thinking=False,
        stream=True,
        incremental_output=True,
    )
    chunks = list(completion)
    reasoning, answer = quick_start_loop(chunks)
    assert reasoning == "" and answer
    assert chunks[-1].usage["output_tokens_details"]["reasoning_tokens"] == 0
    if target.script:
        assert answer == target.script.answer


def test_seed_thinking_budget_50(target: Target) -> None:
    messages = [{"role": "user", "content": "你是誰?"}]
    completion = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=messages,
        result_format="message",
        enable_thinking=True,
        # 設定最大推理過程 Token 數
        thinking_budget=50,
        stream=True,
        incremental_output=True,
    )
    chunks = list(completion)
    reasoning, answer = quick_start_loop(chunks)
    reasoning_tokens = chunks[-1].usage["output_tokens_details"]["reasoning_tokens"]
    assert 0 < reasoning_tokens <= 50
    assert answer
    if target.script:
        # The scripted reasoning is longer than 50 tokens: it is cut, the injected early-stop
        # phrase is neither shown nor counted, and the model goes on to its answer.
        assert reasoning_tokens == 50
        assert target.script.reasoning.startswith(reasoning) and len(reasoning) < len(target.script.reasoning)
        assert "Considering the limited time" not in reasoning + answer
        assert answer == target.script.answer


def test_incremental_output_false_through_sdk(target: Target) -> None:
    """The SDK sends ``incremental_output: true`` and rebuilds the cumulative text itself."""
    completion = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=[{"role": "user", "content": "你是誰?"}],
        result_format="message",
        enable_thinking=True,
        stream=True,
        incremental_output=False,
    )
    chunks = list(completion)
    assert all(c.status_code == 200 for c in chunks)
    contents = [c.output.choices[0].message.content for c in chunks]
    assert all(b.startswith(a) for a, b in itertools.pairwise(contents))
    last = chunks[-1].output.choices[0]
    assert last.finish_reason == "stop"
    if target.script:
        assert last.message.content == target.script.answer
        assert last.message.reasoning_content == target.script.reasoning


def test_non_streaming_message(target: Target) -> None:
    response = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=[{"role": "user", "content": "你是誰?"}],
        result_format="message",
        enable_thinking=True,
    )
    assert response.status_code == 200, response
    choice = response.output.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert response.usage["output_tokens_details"]["reasoning_tokens"] > 0
    assert response.request_id
    if target.script:
        assert choice.message.content == target.script.answer
        assert choice.message.reasoning_content == target.script.reasoning


def test_non_streaming_text_is_the_default_for_commercial_models(target: Target) -> None:
    response = Generation.call(api_key=API_KEY, model="qwen-plus", prompt="你是誰?")
    assert response.status_code == 200, response
    assert response.output.choices is None
    assert response.output.finish_reason == "stop"
    assert response.output.text
    if target.script:
        assert response.output.text == target.script.answer


def test_thinking_only_model(target: Target) -> None:
    completion = Generation.call(
        api_key=API_KEY,
        model="qwq-plus",
        messages=[{"role": "user", "content": "你是誰?"}],
        stream=True,
    )
    chunks = list(completion)
    reasoning, answer = quick_start_loop(chunks)
    # QwQ answers as "message" and incrementally without being asked.
    assert reasoning and answer
    if target.script:
        assert (reasoning, answer) == (target.script.reasoning, target.script.answer)


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("qwq-plus", {}, decision.STREAM_ONLY),
        ("qwen3-8b", {}, decision.NON_STREAM_THINKING),
        ("qwq-plus", {"enable_thinking": False, "stream": True}, decision.THINKING_ONLY),
        ("qwen-plus", {"temperature": 2.5}, "Temperature should be in [0.0, 2.0)"),
        ("qwen-plus", {"top_p": 0}, "Range of top_p should be (0.0, 1.0]"),
        ("qwen-plus", {"max_tokens": 0}, "Range of max_tokens should be [1, 32768]"),
        ("qwen-plus", {"n": 5}, "Range of n should be [1, 4]"),
        (
            "qwen-plus",
            {"enable_thinking": True, "thinking_budget": 0, "stream": True},
            "The thinking_budget parameter must be a positive integer and not greater than 81920",
        ),
        ("qwen-plus", {"tools": [{"type": "function"}]}, "tools[0].function must be an object."),
        ("qwen-plus", {"result_format": "json"}, 'must be "text" or "message"'),
    ],
)
def test_bad_parameters(target: Target, model: str, extra: dict[str, Any], message: str) -> None:
    response = Generation.call(api_key=API_KEY, model=model, prompt="hi", **extra)
    if extra.get("stream"):
        (response,) = list(response)
    assert response.status_code == 400
    assert response.code == "InvalidParameter"
    assert message in response.message
    assert response.request_id


def test_bad_key_and_unknown_model(target: Target) -> None:
    response = Generation.call(api_key="sk-wrong", model="qwen-plus", prompt="hi")
    assert (response.status_code, response.code) == (401, "InvalidApiKey")
    (streamed,) = list(Generation.call(api_key="sk-wrong", model="qwen-plus", prompt="hi", stream=True))
    assert (streamed.status_code, streamed.code) == (401, "InvalidApiKey")
    response = Generation.call(api_key=API_KEY, model="no-such-model", prompt="hi")
    assert (response.status_code, response.code) == (404, "ModelNotFound")
    assert "no-such-model" in response.message


def test_soft_switch_no_think(target: Target) -> None:
    completion = Generation.call(
        api_key=API_KEY,
        model="qwen3-8b",
        messages=[{"role": "user", "content": "你是誰?/no_think"}],
        result_format="message",
        enable_thinking=True,
        stream=True,
        incremental_output=True,
    )
    reasoning, answer = quick_start_loop(completion)
    assert reasoning == "" and answer


class _Recording(StaticKeys):
    """Remembers the workspace header each request authenticated with."""

    def __init__(self) -> None:
        super().__init__([API_KEY])
        self.workspaces: list[str | None] = []

    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal:
        self.workspaces.append(workspace)
        return await super().authenticate(authorization, workspace)


def test_workspace_reaches_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, gate = FakeEngine(), _Recording()
    runtimes = {"default": Runtime(engine, ChatFormat(engine.tokenizer))}
    live, running = serve(create_app(Settings(api_keys=(API_KEY,)), runtimes=runtimes, gate=gate))
    monkeypatch.setattr(dashscope, "base_http_api_url", live.dashscope_base)
    try:
        response = Generation.call(
            api_key=API_KEY, model="qwen-plus", prompt="hi", workspace="ws-123", result_format="message"
        )
    finally:
        stop(running)
    assert response.status_code == 200
    assert gate.workspaces == ["ws-123"]
