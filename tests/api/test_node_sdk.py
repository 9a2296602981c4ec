"""The seed's Node.js example through the official `openai` npm package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import API_KEY, LiveServer

NODE_DIR = Path(__file__).parent.parent / "node"


def run_node_example(
    live: LiveServer,
    model: str,
    script: str = "seed_stream.mjs",
    *,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> list[dict[str, object]]:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").exists():
        pytest.skip("Node.js or tests/node/node_modules missing: run `make install-dev`")
    env = {
        **os.environ,
        "DASHSCOPE_API_KEY": API_KEY,
        "THINKSERVE_BASE_URL": live.openai_base,
        "THINKSERVE_MODEL": model,
        **(env or {}),
    }
    out = subprocess.run(
        ["node", script], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_node_sdk_streams_thinking_then_answer_then_usage(fake_server: LiveServer) -> None:
    usage_line, result = run_node_example(fake_server, "qwen-plus")
    assert result["reasoning"] == "The user asks something simple. I will answer briefly."
    assert result["answer"] == "Hello! I am a helpful assistant."
    usage = usage_line["usage"]
    assert isinstance(usage, dict)
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0


def test_node_sdk_runs_the_function_calling_example(fake_server: LiveServer) -> None:
    """Streamed, thinking on: the weather call, then the answer from its result."""
    first, second = run_node_example(fake_server, "qwen-plus", "function_calling.mjs")
    assert first["reasoning"] and first["finish"] == "tool_calls"
    (call,) = first["toolCalls"]  # type: ignore[misc]
    assert call["id"].startswith("call_") and call["function"]["name"] == "get_current_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "Hangzhou"}
    assert second["toolCalls"] == [] and second["finish"] == "stop"
    assert second["content"] == "Hello! I am a helpful assistant."
