"""The seed examples through ``--upstream`` pointed at two running ``vllm serve`` processes, with the
tiny model's Hugging Face export and its tokenizer files: thinking stream, budget 50 exact,
DashScope stream, and ``cached_tokens`` from vLLM's own count.

Needs vLLM (``make install-vllm``) and ``tests/fixtures/tiny-qwen3-hf``; skipped with a message
otherwise. ``THINKSERVE_VLLM_PYTHON`` names another interpreter that has vLLM.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import httpx
import pytest

from tests.conftest import API_KEY, FIXTURES, LiveServer, free_port, serve, stop
from tests.remote.test_remote_real import LONG_THOUGHT, SEED, run
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.remote.settings import RemoteSettings
from thinkserve.platform.static_keys import StaticKeys

pytestmark = pytest.mark.slow
Generation: Any = dashscope.Generation
HF_EXPORT = Path(os.environ.get("THINKSERVE_TINY_HF", FIXTURES / "tiny-qwen3-hf"))


def _python() -> str:
    python = os.environ.get("THINKSERVE_VLLM_PYTHON", sys.executable)
    if python == sys.executable and importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed: make install-vllm (or THINKSERVE_VLLM_PYTHON=a python with vLLM)")
    if not (HF_EXPORT / "config.json").is_file():
        pytest.skip(f"{HF_EXPORT} is missing (the tiny model's Hugging Face export)")
    return python


def _vllm_serve(python: str, port: int) -> subprocess.Popen[bytes]:
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(HF_EXPORT)]
    command += ["--port", str(port), "--host", "127.0.0.1", "--max-model-len", "4096"]
    command += ["--enable-prompt-tokens-details", "--served-model-name", "tiny-qwen3"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def vllm_pool() -> Iterator[LiveServer]:
    python = _python()
    ports = [free_port(), free_port()]
    processes = [_vllm_serve(python, port) for port in ports]
    try:
        deadline = time.monotonic() + 900
        for port, process in zip(ports, processes, strict=True):
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None:
                    raise RuntimeError(f"vllm serve exited: {process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "vllm serve did not start"
                time.sleep(1)
        remote = RemoteSettings(
            "default",
            tokenizer=str(HF_EXPORT),
            upstreams=tuple(f"http://127.0.0.1:{p}" for p in ports),  # type: ignore[arg-type]
            read_timeout=300.0,
        )
        settings = Settings(api_keys=(API_KEY,), engines={"default": remote})
        live, running = serve(create_app(settings, gate=StaticKeys(settings.api_keys)))
        try:
            yield live
        finally:
            stop(running)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_vllm_detected(vllm_pool: LiveServer) -> None:
    engine = vllm_pool.app.state.engines["default"]
    assert [u.wire.name for u in engine.pool.upstreams] == ["vllm", "vllm"]
    assert engine.context_length == 4096 and engine.served_model == "tiny-qwen3"


def test_seed_thinking_stream(vllm_pool: LiveServer) -> None:
    reasoning, answer, usage, finish = run(
        vllm_pool, model="qwen-plus", messages=SEED, extra_body={"enable_thinking": True}
    )
    assert reasoning.strip() and answer.strip() and finish == "stop"
    assert 0 < usage.completion_tokens_details.reasoning_tokens < usage.completion_tokens


def test_budget_50_exact_and_cached_tokens_from_vllm(vllm_pool: LiveServer) -> None:
    _, _, full, _ = run(vllm_pool, model="qwen3-8b", messages=LONG_THOUGHT)
    assert full.completion_tokens_details.reasoning_tokens > 50
    reasoning, answer, usage, finish = run(
        vllm_pool, model="qwen3-8b", messages=LONG_THOUGHT, extra_body={"thinking_budget": 50}
    )
    assert usage.completion_tokens_details.reasoning_tokens == 50
    assert answer.strip() and finish == "stop"
    assert "Considering the limited time" not in reasoning + answer
    # A long prompt again lands on the upstream that has it: vLLM counts its cached blocks (whole
    # blocks only, hence the long system prompt).
    messages = [{"role": "system", "content": "You are a careful calculator. " * 60}, *LONG_THOUGHT]
    run(vllm_pool, model="qwen3-8b", messages=messages, extra_body={"thinking_budget": 50})
    _, _, again, _ = run(vllm_pool, model="qwen3-8b", messages=messages, extra_body={"thinking_budget": 50})
    assert again.prompt_tokens_details.cached_tokens > 0


def test_dashscope_seed_stream(vllm_pool: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", vllm_pool.dashscope_base)
    completion = Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=SEED,
        result_format="message",
        enable_thinking=True,
        stream=True,
        incremental_output=True,
    )
    reasoning = answer = ""
    chunk: Any = None
    for chunk in completion:
        message = chunk.output.choices[0].message
        reasoning += message.reasoning_content or ""
        answer += message.content or ""
    assert chunk.status_code == 200 and chunk.output.choices[0].finish_reason == "stop"
    assert reasoning and answer
