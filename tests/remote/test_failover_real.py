"""Killing an engine server mid-run, seen from the API: requests that had not sent a token yet go
to the other server and lose nothing; requests that had get a clean error in their dialect; the
dead server is ejected, and taken back once it answers again. Two ``token_server`` processes run
the real llama.cpp engine with the tiny model, paced so that the kill lands mid-generation."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import API_KEY, LiveServer
from tests.remote.upstreams import gateway, remote_engine, upstreams, wait_for

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {API_KEY}"}
STORY = "Tell me a very long story about the sea, the ships and their crews."


def openai_stream(live: LiveServer, started: Callable[[], None], content: str = STORY) -> dict[str, Any]:
    """Stream a chat completion; call ``started`` at the first content; return the outcome."""
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": content}], "stream": True}
    body["max_tokens"] = 120
    text, error, finish, first = "", None, None, True
    with httpx.stream(
        "POST", f"{live.openai_base}/chat/completions", json=body, headers=AUTH, timeout=60
    ) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            data = orjson.loads(line[6:])
            if "error" in data:
                error = data["error"]
                continue
            for choice in data["choices"]:
                text += choice["delta"].get("content") or ""
                finish = choice.get("finish_reason") or finish
            if text and first:
                first = False
                started()
    return {"text": text, "error": error, "finish": finish}


def dashscope_stream(live: LiveServer, started: Callable[[], None]) -> dict[str, Any]:
    body = {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": STORY}]},
        "parameters": {"incremental_output": True, "max_tokens": 120, "result_format": "message"},
    }
    headers = {**AUTH, "X-DashScope-SSE": "enable"}
    url = f"{live.base_url}/api/v1/services/aigc/text-generation/generation"
    text, error, finish, first = "", None, None, True
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200, r.read()
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:]
            if not line.startswith("data:"):
                continue
            data = orjson.loads(line[5:])
            if event == "error":
                error = data
                continue
            choice = data["output"]["choices"][0]
            text += choice["message"]["content"]
            finish = choice["finish_reason"] if choice["finish_reason"] != "null" else finish
            if text and first:
                first = False
                started()
    return {"text": text, "error": error, "finish": finish}


class Starts:
    """Counts streams that saw their first content (called from the client threads)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def test_requests_not_started_fail_over_and_lose_nothing() -> None:
    # A holds every request 5 s before its first token: the kill finds them all not started.
    with upstreams(["--first-token-delay", "5"], []) as (a, b), gateway([a.url, b.url]) as live:
        engine = remote_engine(live)
        up_a, up_b = engine.pool.upstreams
        starts = Starts()
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(openai_stream, live, starts, f"Question {i}: {STORY}") for i in range(6)]
            wait_for(
                lambda: up_a.in_flight + up_b.in_flight + starts.n >= 6 and up_a.in_flight > 0, what="routing"
            )
            on_a = up_a.in_flight
            a.kill()
            results = [f.result() for f in futures]
        assert all(r["error"] is None and r["finish"] in ("stop", "length") and r["text"] for r in results)
        assert up_a.counters.failovers == on_a >= 1
        assert b.stats()["completions"] == 6  # its own, and the ones A never started
        assert up_a.state == "ejected" and up_a.counters.ejections == 1


def test_started_requests_get_a_clean_error_in_their_dialect_and_the_rest_finish() -> None:
    pace = ["--token-delay", "0.05"]
    with upstreams(pace, pace) as (a, b), gateway([a.url, b.url]) as live:
        engine = remote_engine(live)
        up_a, _ = engine.pool.upstreams
        starts = Starts()
        with ThreadPoolExecutor(8) as pool:
            futures: list[Future[dict[str, Any]]] = []
            for _ in range(3):
                futures.append(pool.submit(openai_stream, live, starts))
                futures.append(pool.submit(dashscope_stream, live, starts))
            wait_for(lambda: starts.n >= 6, what="every stream to start")
            on_a = up_a.in_flight
            a.kill()
            results = [f.result() for f in futures]
        errors = [r for r in results if r["error"] is not None]
        assert len(errors) == on_a >= 1
        for r in results:
            assert r["text"], "every stream had sent content before the kill"
            if r["error"] is None:
                assert r["finish"] in ("stop", "length")
        for i, r in enumerate(results):
            if r["error"] is None:
                continue
            if i % 2 == 0:  # OpenAI: a data frame with an error object
                assert r["error"]["code"] == "internal_error"
                assert "upstream engine server failed" in r["error"]["message"]
            else:  # DashScope: event:error with its code
                assert r["error"]["code"] == "InternalError"
                assert "upstream engine server failed" in r["error"]["message"]


def test_ejection_and_return() -> None:
    with upstreams([], []) as (a, b), gateway([a.url, b.url]) as live:
        engine = remote_engine(live)
        up_a, up_b = engine.pool.upstreams
        a.kill()
        # Requests meanwhile: a refused connection fails over at once, then A is out.
        results = [openai_stream(live, lambda: None, "hi") for _ in range(4)]
        assert all(r["error"] is None and r["text"] for r in results)
        wait_for(lambda: up_a.state == "ejected", what="the ejection")
        health = httpx.get(f"{live.base_url}/health").json()
        assert health["status"] == "ok" and "1/2 upstreams up" in health["engines"]["default"]["reason"]
        metrics = httpx.get(f"{live.base_url}/metrics", headers=AUTH).text
        assert f'thinkserve_upstream_up{{engine="default",upstream="{a.url}"}} 0.0' in metrics
        assert f'thinkserve_upstream_ejections_total{{engine="default",upstream="{a.url}"}} 1.0' in metrics
        # Both down: 503 in the caller's dialect, before anything streams.
        b.kill()
        wait_for(lambda: up_b.state == "ejected", what="B's ejection")
        body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(f"{live.openai_base}/chat/completions", json=body, headers=AUTH, timeout=30)
        assert r.status_code == 503 and "No upstream engine server" in r.json()["error"]["message"]
        assert httpx.get(f"{live.base_url}/health").status_code == 503
        # A comes back on its port: probed, returned, and given requests again.
        a.start()
        wait_for(lambda: up_a.state == "up", timeout=30, what="A's return")
        assert up_a.counters.returns == 1
        result = openai_stream(live, lambda: None, "hi again")
        assert result["error"] is None and a.stats()["completions"] == 1
