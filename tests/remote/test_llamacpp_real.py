"""The seed examples through ``--upstream`` pointed at two running llama.cpp servers
(``llama-server``, the llama.cpp thinkserve runs, built by ``make install-llama-server``) on the
tiny GGUF: thinking stream, budget 50 exact, DashScope stream, ``cached_tokens`` from the server's
own count, token ids the server streams only as bytes, and one server killed mid-run.

Skipped with a message saying ``make install-llama-server`` where the binary is missing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dashscope
import httpx
import openai
import pytest

from tests.conftest import API_KEY, TINY_MODEL, LiveServer
from tests.remote.llama_servers import N_CTX, LlamaServer, llama_servers
from tests.remote.test_remote_real import LONG_THOUGHT, QUESTION, SEED, run
from tests.remote.upstreams import gateway, remote_engine, wait_for
from thinkserve.core.types import SamplingParams
from thinkserve.engine.protocol import EngineFinished, EngineRequest, TokenEvent
from thinkserve.engine.remote.engine import RemoteEngine
from thinkserve.engine.remote.llamacpp_wire import LlamaCppWire
from thinkserve.engine.remote.settings import RemoteSettings
from thinkserve.engine.remote.vocab import load_vocab

pytestmark = pytest.mark.slow
Generation: Any = dashscope.Generation


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LlamaServer]]:
    with llama_servers(tmp_path_factory.mktemp("llama-server"), [2, 2]) as pair:
        yield pair


@pytest.fixture(scope="module")
def pool(servers: list[LlamaServer]) -> Iterator[LiveServer]:
    # One upstream named llama.cpp, the other detected (GET /props).
    a, b = servers
    with gateway([{"url": a.url, "protocol": "llamacpp"}, b.url], read_timeout=300.0) as live:
        yield live


def test_llamacpp_detected(pool: LiveServer) -> None:
    engine = remote_engine(pool)
    assert [u.wire.name for u in engine.pool.upstreams if u.wire is not None] == ["llamacpp", "llamacpp"]
    assert engine.context_length == N_CTX  # default_generation_settings.n_ctx: one slot's


def test_seed_thinking_stream(pool: LiveServer) -> None:
    reasoning, answer, usage, finish = run(
        pool, model="qwen-plus", messages=SEED, extra_body={"enable_thinking": True}
    )
    assert reasoning.strip() and answer.strip() and finish == "stop"
    assert "<think>" not in reasoning + answer and "</think>" not in reasoning + answer
    assert 0 < usage.completion_tokens_details.reasoning_tokens < usage.completion_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_budget_50_exact(pool: LiveServer) -> None:
    full, _, full_usage, _ = run(pool, model="qwen3-8b", messages=LONG_THOUGHT)
    assert full_usage.completion_tokens_details.reasoning_tokens > 50
    reasoning, answer, usage, finish = run(
        pool, model="qwen3-8b", messages=LONG_THOUGHT, extra_body={"thinking_budget": 50}
    )
    assert usage.completion_tokens_details.reasoning_tokens == 50
    assert full.startswith(reasoning.strip())  # the server's greedy tokens, cut at the budget
    assert answer.strip() and finish == "stop"
    assert "Considering the limited time" not in reasoning + answer


def test_dashscope_seed_stream(pool: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", pool.dashscope_base)
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


def test_cached_tokens_are_the_servers_own_count(pool: LiveServer, servers: list[LlamaServer]) -> None:
    engine = remote_engine(pool)
    system = {"role": "system", "content": "You are a careful calculator. " * 30}
    messages: list[dict[str, str]] = [system, *QUESTION]
    _, answer, first, _ = run(pool, model="qwen-plus", messages=messages)
    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And 3 plus 4?"}]
    before = sum(s.metric("prompt_tokens_cached_total") for s in servers)
    requests = [sum(u.counters.requests.values()) for u in engine.pool.upstreams]
    _, _, second, _ = run(pool, model="qwen-plus", messages=messages)
    after = sum(s.metric("prompt_tokens_cached_total") for s in servers)
    # The next turn went where the first one's slot holds its prompt, and the usage says what
    # that server counted (timings.cache_n; its /metrics adds the same number).
    assert second.prompt_tokens_details.cached_tokens >= first.prompt_tokens // 2
    assert second.prompt_tokens_details.cached_tokens == after - before
    delta = [
        sum(u.counters.requests.values()) - n for u, n in zip(engine.pool.upstreams, requests, strict=True)
    ]
    assert sorted(delta) == [0, 1]


FORCED = "Llamas 🦙 and 龘 here"
"""Written by a grammar: the emoji and the rare character are split over byte-level tokens, which
llama-server streams as bytes in the next token's event only."""


def _forced(servers: list[LlamaServer], monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int], int]:
    """The prompt, the ids the server writes for it under the grammar (its own non-streamed
    ``tokens``, end token included), and the first count of them that ends inside a character;
    every completion from here on carries that grammar."""
    grammar = f'root ::= "{FORCED}"'
    plain = LlamaCppWire.body

    def body(self: LlamaCppWire, *args: Any, **kwargs: Any) -> Any:
        return {**plain(self, *args, **kwargs), "grammar": grammar}

    monkeypatch.setattr(LlamaCppWire, "body", body)
    vocab = load_vocab(str(TINY_MODEL))
    try:
        tokenizer = vocab.tokenizer
        prompt = tokenizer.encode("<|im_start|>user\nSay it.<|im_end|>\n<|im_start|>assistant\n")
        whole = {"prompt": prompt, "n_predict": 64, "temperature": 0, "grammar": grammar}
        reply = httpx.post(f"{servers[0].url}/completion", json={**whole, "return_tokens": True}, timeout=60)
        truth: list[int] = reply.json()["tokens"]
        pieces = [tokenizer.token_bytes(t) for t in truth]
        cut = next(k for k in range(1, len(truth)) if not _whole(b"".join(pieces[:k])))
    finally:
        if vocab.close is not None:
            vocab.close()
    assert reply.json()["content"] == FORCED and cut < len(truth) - 1
    return prompt, truth, cut


def _whole(data: bytes) -> bool:
    """Whether ``data`` ends at a character's end."""
    return data.decode("utf-8", errors="ignore").encode() == data


def _generate(
    server: LlamaServer, prompt: list[int], max_tokens: int, *, whole: bool = False
) -> tuple[list[int], str, str]:
    """One request through a remote engine on ``server``: sampled ids, text, finish reason;
    ``whole``: asked as one non-streamed completion (``EngineRequest.whole``)."""

    async def body() -> tuple[list[int], str, str]:
        settings = RemoteSettings("default", tokenizer=str(TINY_MODEL), upstreams=(server.url,))  # type: ignore[arg-type]
        engine = RemoteEngine(settings, load_vocab(str(TINY_MODEL)))
        await engine.start()
        try:
            greedy = SamplingParams(temperature=0.0)
            sequence = engine.submit(EngineRequest("r", prompt, greedy, max_tokens, whole=whole))
            ids, text = [], ""
            async for event in sequence:
                if isinstance(event, TokenEvent):
                    ids.append(event.token)
                    text += event.text
                elif isinstance(event, EngineFinished):
                    return ids, text, event.reason
            raise AssertionError("no EngineFinished")
        finally:
            await engine.aclose()

    return asyncio.run(body())


def test_ids_sent_as_bytes_only_are_recovered(
    servers: list[LlamaServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt, truth, cut = _forced(servers, monkeypatch)
    ids, text, reason = _generate(servers[0], prompt, 64)
    assert ids == truth[:-1] and text == FORCED and reason == "stop"
    # max_tokens ends on a token that ends inside a character: the server would withhold it at
    # the end of a completion; the lookahead's next token brings it.
    ids, _, reason = _generate(servers[0], prompt, cut)
    assert ids == truth[:cut] and reason == "length"
    # Asked whole ("stream": false), the answer lists every id itself: nothing to recover.
    ids, text, reason = _generate(servers[0], prompt, 64, whole=True)
    assert ids == truth[:-1] and text == FORCED and reason == "stop"
    ids, _, reason = _generate(servers[0], prompt, cut, whole=True)
    assert ids == truth[:cut] and reason == "length"


QUESTIONS = [
    "Explain step by step how to compute 1234 times 5678.",
    "Explain step by step how to compute 4321 times 8765.",
    "Explain step by step how to compute 2468 times 1357.",
]


def openai_turn(live: LiveServer, content: str, started: threading.Event) -> dict[str, Any]:
    """One thinking stream with the OpenAI SDK: its text, finish reason, or the error it raised;
    ``started`` is set at its first text."""
    client = openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
    text, finish, error = "", None, None
    try:
        for chunk in client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": content}],
            stream=True,
            extra_body={"enable_thinking": True},
        ):
            if chunk.choices:
                delta: Any = chunk.choices[0].delta
                text += (getattr(delta, "reasoning_content", None) or "") + (delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
                if text:
                    started.set()
    except openai.APIError as exc:
        error = {"code": (exc.body or {}).get("code"), "message": exc.message}  # type: ignore[union-attr]
    return {"text": text, "finish": finish, "error": error}


def dashscope_turn(live: LiveServer, content: str, started: threading.Event) -> dict[str, Any]:
    """The same with the DashScope SDK, whose stream ends with a non-200 response on an error."""
    text, finish, error = "", None, None
    for chunk in Generation.call(
        api_key=API_KEY,
        model="qwen-plus",
        messages=[{"role": "user", "content": content}],
        result_format="message",
        enable_thinking=True,
        stream=True,
        incremental_output=True,
    ):
        if chunk.status_code != 200:
            error = {"code": chunk.code, "message": chunk.message}
            break
        message = chunk.output.choices[0].message
        text += (message.reasoning_content or "") + (message.content or "")
        finish = chunk.output.choices[0].finish_reason
        if text:
            started.set()
    return {"text": text, "finish": finish, "error": error}


def test_kill_one_server_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request goes to A (weight 100), which has one slot and runs at a few percent of a
    CPU: one request generates, the others wait in its queue. A is killed: the waiting ones (no
    token sent) go to B and lose nothing; the generating one ends with an error in its caller's
    dialect."""
    with llama_servers(tmp_path, [1, 2]) as (a, b), gateway([{"url": a.url, "weight": 100}, b.url]) as live:
        monkeypatch.setattr(dashscope, "base_http_api_url", live.dashscope_base)
        up_a, up_b = remote_engine(live).pool.upstreams
        started = threading.Event()
        with ThreadPoolExecutor(6) as threads, a.throttled():
            futures: list[Future[dict[str, Any]]] = []
            for question in QUESTIONS:
                futures.append(threads.submit(openai_turn, live, question, started))
                futures.append(threads.submit(dashscope_turn, live, question, started))
            wait_for(
                lambda: up_a.in_flight == 6 and started.is_set(),
                what="A to take every request and stream text for the first one",
            )
            assert sum(up_a.counters.first_token.counts) == 1
            a.kill()
            results = [f.result() for f in futures]
        failed = [(i, r) for i, r in enumerate(results) if r["error"] is not None]
        assert len(failed) == 1, results  # the one in A's slot
        assert up_a.counters.failovers == 5 and up_b.counters.requests == {"ok": 5}
        for r in results:
            assert r["text"]  # reasoning, then the answer; the failed one had started
            if r["error"] is None:
                assert r["finish"] == "stop"
        i, r = failed[0]
        assert r["error"]["code"] == ("internal_error" if i % 2 == 0 else "InternalError")
        assert "upstream engine server failed" in r["error"]["message"]
        wait_for(lambda: up_a.state == "ejected", what="A's ejection")
