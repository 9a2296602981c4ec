"""The seed's examples through the official SDKs against ``thinkserve serve --vllm DIR``.

The server is the real command in a child process, serving every catalogue name with vLLM on
the tiny model's Hugging Face export (``tests/fixtures/tiny-qwen3-hf``, the GGUF's weights).
A config file only makes vLLM start quickly here (no compilation, a small cache); the full
platform runs (keys, metering in SQLite). Skipped unless vLLM is installed (``make install-vllm``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vLLM is not installed: `make install-vllm` adds it to .venv", allow_module_level=True)

import dashscope
import httpx
import openai
from dashscope import Generation as _Generation

from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

Generation: Any = _Generation
ROOT = Path(__file__).resolve().parents[2]
HF_MODEL = ROOT / "tests" / "fixtures" / "tiny-qwen3-hf"
KEY = "sk-vllm-sdk-test"
# vLLM's CPU blocks hold 128 tokens (``block_size`` below): a prompt hits its prefix cache only
# past one block.
BLOCK = 128
LONG_SYSTEM = "You answer questions about rivers, mountains and the weather. " * 25


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    @property
    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(api_key=KEY, base_url=f"{self.base_url}/compatible-mode/v1", max_retries=0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("vllm-serve")
    config = folder / "thinkserve.toml"
    config.write_text(
        "\n".join(
            [
                "[server]",
                f'data_dir = "{folder / "data"}"',
                f'api_keys = ["{KEY}"]',
                "[engines.default]",
                'kind = "vllm"',
                "enforce_eager = true",
                'dtype = "float32"',
                "max_model_len = 8192",
                f"block_size = {BLOCK}",
                f"kv_cache_memory_bytes = {128 << 20}",
            ]
        )
        + "\n"
    )
    port = free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "thinkserve", "--log-level", "warning", "serve"]
    command += ["--config", str(config), "--port", str(port), "--vllm", str(HF_MODEL)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "THINKSERVE_API_KEYS": ""},
        )
    base = f"http://127.0.0.1:{port}"
    live = Server(process, base, log)
    try:
        _wait_up(live)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_up(server: Server) -> None:
    # vLLM loads, profiles and warms up in a minute or more on two busy cores.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited: {server.log.read_text()[-3000:]}")
        try:
            if httpx.get(server.base_url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not start: {server.log.read_text()[-3000:]}")


def openai_stream(server: Server, **kwargs: Any) -> tuple[str, str, Any, str | None]:
    """The seed's streaming loop: reasoning, answer, the usage chunk, the finish reason."""
    completion = server.openai.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    )
    reasoning = answer = ""
    usage: Any = None
    finish = None
    for chunk in completion:
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        if getattr(delta, "reasoning_content", None) is not None:
            reasoning += delta.reasoning_content  # type: ignore[attr-defined]
        if delta.content:
            answer += delta.content
        finish = chunk.choices[0].finish_reason or finish
    return reasoning, answer, usage, finish


def test_health_names_vllm(server: Server) -> None:
    body = httpx.get(server.base_url + "/health").json()
    assert body["status"] == "ok"
    assert body["engines"]["default"]["reason"].startswith("vLLM ")


def test_seed_thinking_stream(server: Server) -> None:
    reasoning, answer, usage, finish = openai_stream(
        server,
        model="qwen-plus",
        messages=[{"role": "user", "content": "你是誰"}],
        extra_body={"enable_thinking": True},
    )
    assert reasoning.strip() and answer.strip()
    assert "<think>" not in reasoning + answer and "</think>" not in reasoning + answer
    assert finish == "stop"
    assert 0 < usage.completion_tokens_details.reasoning_tokens < usage.completion_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_seed_thinking_budget_50_is_exact(server: Server) -> None:
    question = [{"role": "user", "content": "What is 12 plus 7?"}]
    # Greedily, the tiny model reasons about 53 tokens on this question: more than the budget.
    _, _, free, _ = openai_stream(
        server, model="qwen-plus", messages=question, temperature=0, extra_body={"enable_thinking": True}
    )
    assert free.completion_tokens_details.reasoning_tokens > 50
    reasoning, answer, usage, finish = openai_stream(
        server,
        model="qwen-plus",
        messages=question,
        temperature=0,
        extra_body={"enable_thinking": True, "thinking_budget": 50},
    )
    assert usage.completion_tokens_details.reasoning_tokens == 50
    assert answer.strip() and finish == "stop"
    assert "Considering the limited time" not in reasoning + answer


def test_seed_dashscope_stream(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", f"{server.base_url}/api/v1/")
    completion = Generation.call(
        api_key=KEY,
        model="qwen-plus",
        messages=[{"role": "user", "content": "你是誰?"}],
        result_format="message",
        enable_thinking=True,
        thinking_budget=50,
        stream=True,
        incremental_output=True,
    )
    reasoning_content = answer_content = ""
    chunk: Any = None
    for chunk in completion:
        message = chunk.output.choices[0].message
        if message.reasoning_content:
            reasoning_content += message.reasoning_content
        if message.content:
            answer_content += message.content
    assert reasoning_content and answer_content
    assert chunk.output.choices[0].finish_reason == "stop"
    usage = chunk.usage
    assert 0 < usage["output_tokens_details"]["reasoning_tokens"] <= 50
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_cached_tokens_come_from_vllms_prefix_cache(server: Server) -> None:
    messages = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "Is it cold today?"}]

    def usage() -> Any:
        return openai_stream(server, model="qwen3-8b", messages=messages, max_tokens=8, temperature=0)[2]

    first, second = usage(), usage()
    assert first.prompt_tokens > 2 * BLOCK
    assert first.prompt_tokens_details.cached_tokens == 0
    # vLLM reuses whole blocks, all but the one holding the prompt's last token
    assert second.prompt_tokens_details.cached_tokens == (second.prompt_tokens - 1) // BLOCK * BLOCK
