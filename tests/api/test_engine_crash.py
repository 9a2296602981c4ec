"""A crash of the engine process, seen from the API: the stream in flight ends with an error frame in
its dialect, its usage so far is recorded, /health says why the engine is down, and the engine comes
back by itself. The real llama.cpp engine runs the tiny model in its own process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import API_KEY, LiveServer, serve, stop
from tests.engine.conftest import engine_model
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.llamacpp.settings import LlamaCppSettings
from thinkserve.platform.static_keys import StaticKeys

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LONG = {"role": "user", "content": "Tell me a very long story about the sea, the ships and their crews."}


@pytest.fixture(scope="module")
def crashing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, StaticKeys]]:
    model = engine_model()
    spec = LlamaCppSettings("default", model=str(model), n_ctx=4096, n_seq=2)
    data_dir: Path = tmp_path_factory.mktemp("home")
    settings = Settings(api_keys=(API_KEY,), data_dir=data_dir, engines={"default": spec})
    gate = StaticKeys(settings.api_keys)
    live, running = serve(create_app(settings, gate=gate))
    try:
        yield live, gate
    finally:
        stop(running)


def engine_pid(live: LiveServer) -> int:
    pid = live.app.state.engines["default"].pid
    assert isinstance(pid, int)
    return pid


def wait_up(live: LiveServer, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{live.base_url}/health").json()
        if body["status"] == "ok":
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def kill_mid_stream(live: LiveServer, url: str, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
    """Stream ``body``, kill -9 the engine process after the first frame, return every line.

    The tiny model may write its whole (short) answer before the kill lands; then the stream ends
    normally and the engine comes back: try again, a few times, until the kill cuts a stream.
    """
    for _ in range(8):
        wait_up(live)
        lines: list[bytes] = []
        pid = engine_pid(live)
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                lines.append(line.encode())
                if len(lines) == 1:
                    os.kill(pid, signal.SIGKILL)
        if any(line.startswith((b"event:error", b'data: {"error"')) for line in lines):
            return lines
    raise AssertionError("the model finished every stream before the kill landed")


def test_openai_stream_gets_an_error_frame_and_usage_is_recorded(
    crashing: tuple[LiveServer, StaticKeys],
) -> None:
    live, gate = crashing
    wait_up(live)
    body = {"model": "qwen-plus", "messages": [LONG], "stream": True, "max_tokens": 3000}
    lines = kill_mid_stream(live, f"{live.openai_base}/chat/completions", body, AUTH)
    data = [orjson.loads(line[6:]) for line in lines if line.startswith(b"data: {")]
    assert "error" in data[-1], data[-1]
    assert "killed by SIGKILL" in data[-1]["error"]["message"]
    assert data[-1]["error"]["code"] == "internal_error"
    record = gate.records[-1]
    assert record.status == "error"
    assert record.usage.completion_tokens >= 1
    health = httpx.get(f"{live.base_url}/health").json()
    if health["status"] != "ok":  # it may already be back
        assert health["engines"]["default"]["state"] in ("down", "starting")
        assert "SIGKILL" in health["engines"]["default"]["reason"]
    back = wait_up(live)
    assert back["engines"]["default"]["restarts"] >= 1
    # Served again, by a new process.
    resp = httpx.post(
        f"{live.openai_base}/chat/completions",
        json={"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        headers=AUTH,
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["completion_tokens"] >= 1


def test_dashscope_stream_gets_an_error_event(crashing: tuple[LiveServer, StaticKeys]) -> None:
    live, gate = crashing
    wait_up(live)
    body = {
        "model": "qwen-plus",
        "input": {"messages": [LONG]},
        "parameters": {"incremental_output": True, "max_tokens": 3000},
    }
    headers = {**AUTH, "X-DashScope-SSE": "enable"}
    url = f"{live.base_url}/api/v1/services/aigc/text-generation/generation"
    lines = kill_mid_stream(live, url, body, headers)
    assert b"event:error" in lines
    last = orjson.loads(next(line for line in reversed(lines) if line.startswith(b"data:"))[5:])
    assert last["code"] == "InternalError"
    assert "killed by SIGKILL" in last["message"]
    assert gate.records[-1].status == "error"
    wait_up(live)


def test_requests_while_the_engine_is_down_get_503(crashing: tuple[LiveServer, StaticKeys]) -> None:
    live, _ = crashing
    wait_up(live)
    os.kill(engine_pid(live), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while httpx.get(f"{live.base_url}/health").json()["status"] == "ok":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    resp = httpx.post(
        f"{live.openai_base}/chat/completions",
        json={"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH,
        timeout=60,
    )
    if resp.status_code != 200:  # unless it was back already
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "service_unavailable"
    # Admin-free endpoints keep answering meanwhile.
    assert httpx.get(f"{live.openai_base}/models", headers=AUTH).status_code == 200
    wait_up(live)
