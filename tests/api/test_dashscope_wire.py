"""The native API on the wire (httpx): exact SSE framing, output shapes, error bodies and blocks."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import orjson
import pytest

from tests.api.dashscope_helpers import ENGINES, GENERATION, Target, parse_blocks, serve_target, texts
from tests.conftest import API_KEY, app_with, serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.core.errors import EngineFailure, RateLimited
from thinkserve.engine.fake.engine import FakeEngine, FakeSequence
from thinkserve.engine.protocol import EngineEvent, EngineRequest
from thinkserve.platform.port import Admission, Principal
from thinkserve.platform.static_keys import StaticKeys
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SSE = {**AUTH, "X-DashScope-SSE": "enable"}
# The seed's thinking_budget curl, verbatim but for the URL and key.
SEED_CURL_BODY: dict[str, Any] = {
    "model": "qwen-plus",
    "input": {"messages": [{"role": "user", "content": "你是誰?"}]},
    "parameters": {
        "enable_thinking": True,
        "thinking_budget": 50,
        "incremental_output": True,
        "result_format": "message",
    },
}


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with serve_target(request.param) as t:
        yield t


def body_with(**parameters: Any) -> dict[str, Any]:
    return {**SEED_CURL_BODY, "parameters": parameters}


def test_seed_curl_stream_framing(target: Target) -> None:
    response = httpx.post(target.url, json=SEED_CURL_BODY, headers=SSE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = parse_blocks(response.content)
    assert [b.id for b in blocks] == list(range(1, len(blocks) + 1))
    assert {(b.event, b.status) for b in blocks} == {("result", 200)}
    request_ids = {b.data["request_id"] for b in blocks}
    assert len(request_ids) == 1
    totals = []
    for block in blocks:
        assert list(block.data) == ["output", "usage", "request_id"]
        output: Any = block.data["output"]
        (choice,) = output["choices"]
        assert list(choice) == ["message", "finish_reason"]
        assert list(choice["message"]) == ["content", "reasoning_content", "role"]
        assert isinstance(choice["message"]["content"], str)
        assert isinstance(choice["message"]["reasoning_content"], str)
        usage: Any = block.data["usage"]
        assert list(usage) == [
            "total_tokens",
            "input_tokens",
            "output_tokens",
            "output_tokens_details",
            "prompt_tokens_details",
        ]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        totals.append(usage["total_tokens"])
    assert totals == sorted(totals)
    assert [b.data["output"]["choices"][0]["finish_reason"] for b in blocks[:-1]] == ["null"] * (  # type: ignore[index]
        len(blocks) - 1
    )
    last: Any = blocks[-1].data["output"]
    assert last["choices"][0] == {
        "message": {"content": "", "reasoning_content": "", "role": "assistant"},
        "finish_reason": "stop",
    }
    reasoning, answer = texts(blocks)
    assert reasoning and answer
    assert blocks[-1].data["usage"]["output_tokens_details"]["reasoning_tokens"] <= 50  # type: ignore[index]


def test_exact_bytes_of_a_short_stream() -> None:
    """Every byte of a whole stream, over a fake engine scripted to think "Hm." and answer "Hi!"."""
    live, running = serve(app_with(FakeEngine(reasoning="Hm.", answer="Hi!")))
    try:
        response = httpx.post(live.base_url + GENERATION, json=SEED_CURL_BODY, headers=SSE)
    finally:
        stop(running)
    rid = parse_blocks(response.content)[0].data["request_id"]
    assert isinstance(rid, str)

    def block(n: int, content: str, reasoning: str, reason: str, output: int, thought: int) -> str:
        return (
            f"id:{n}\nevent:result\n:HTTP_STATUS/200\n"
            f'data:{{"output":{{"choices":[{{"message":{{"content":"{content}","reasoning_content":'
            f'"{reasoning}","role":"assistant"}},"finish_reason":"{reason}"}}]}},"usage":'
            f'{{"total_tokens":{23 + output},"input_tokens":23,"output_tokens":{output},'
            f'"output_tokens_details":{{"reasoning_tokens":{thought}}},'
            f'"prompt_tokens_details":{{"cached_tokens":0}}}},"request_id":"{rid}"}}\n\n'
        )

    # <think> \n H m . \n </think> \n \n H i ! : the tags are sampled but not reasoning.
    expected = (
        block(1, "", "H", "null", 3, 2)
        + block(2, "", "m", "null", 4, 3)
        + block(3, "", ".", "null", 5, 4)
        + block(4, "H", "", "null", 10, 5)
        + block(5, "i", "", "null", 11, 5)
        + block(6, "!", "", "null", 12, 5)
        + block(7, "", "", "stop", 12, 5)
    )
    assert response.content.decode() == expected


@pytest.mark.parametrize(
    ("headers", "parameters"),
    [
        ({"Accept": "text/event-stream"}, {}),
        ({"X-DashScope-SSE": "ENABLE"}, {}),
        ({}, {"stream": True}),
    ],
)
def test_ways_to_ask_for_a_stream(
    target: Target, headers: dict[str, str], parameters: dict[str, Any]
) -> None:
    response = httpx.post(target.url, json=body_with(**parameters), headers={**AUTH, **headers})
    assert response.status_code == 200
    last: Any = parse_blocks(response.content)[-1].data["output"]
    # Thinking off, incremental_output absent: Model Studio's default is the whole text so far.
    assert last["finish_reason"] == "stop" and last["text"]


def test_non_streaming_bodies(target: Target) -> None:
    # Greedy, so that a real model gives the same text to both requests.
    text = httpx.post(target.url, json=body_with(temperature=0), headers=AUTH)
    assert text.headers["content-type"] == "application/json"
    data = text.json()
    assert list(data) == ["output", "usage", "request_id"]
    assert list(data["output"]) == ["text", "finish_reason"]
    message = httpx.post(
        target.url, json=body_with(result_format="message", temperature=0), headers=AUTH
    ).json()
    assert list(message["output"]["choices"][0]) == ["finish_reason", "message"]
    assert message["output"]["choices"][0]["message"]["reasoning_content"] == ""
    assert message["output"]["choices"][0]["message"]["content"] == data["output"]["text"]
    if target.script:
        assert data["output"] == {"text": target.script.answer, "finish_reason": "stop"}


def test_thinking_answers_as_message_even_when_text_is_asked(target: Target) -> None:
    response = httpx.post(target.url, json=body_with(enable_thinking=True, result_format="text"), headers=SSE)
    reasoning, answer = texts(parse_blocks(response.content))
    assert reasoning and answer


def test_incremental_output_false_sends_whole_text_so_far(target: Target) -> None:
    response = httpx.post(target.url, json=body_with(incremental_output=False), headers=SSE)
    outputs: list[Any] = [b.data["output"] for b in parse_blocks(response.content)]
    so_far = [o["text"] for o in outputs]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(so_far[:-1]))
    assert outputs[-1]["finish_reason"] == "stop" and so_far[-1] == so_far[-2]
    if target.script:
        assert so_far[-1] == target.script.answer


def test_incremental_output_false_refused_with_thinking(target: Target) -> None:
    for parameters in ({"enable_thinking": True}, {}):
        model = "qwen-plus" if parameters else "qwq-plus"
        body = {**body_with(incremental_output=False, **parameters), "model": model}
        response = httpx.post(target.url, json=body, headers=SSE)
        assert response.status_code == 400
        assert response.json()["message"] == (
            'The incremental_output parameter must be "true" when enable_thinking is true'
        )


BAD_INPUTS: list[tuple[bytes | dict[str, Any], int, str, str]] = [
    (b"{not json", 400, "InvalidParameter", "not valid JSON"),
    (b"[1, 2]", 400, "InvalidParameter", "must be a JSON object"),
    (b"", 400, "InvalidParameter", "not valid JSON"),
    ({"input": {"prompt": "hi"}}, 400, "BadRequest.EmptyModel", 'Required parameter "model"'),
    ({"model": "qwen-plus"}, 400, "BadRequest.EmptyInput", "Required input parameter"),
    ({"model": "qwen-plus", "input": {"messages": []}}, 400, "BadRequest.EmptyInput", "Required input"),
    ({"model": "qwen-plus", "input": "hi"}, 400, "InvalidParameter", "input"),
    ({"model": 7, "input": {"prompt": "hi"}}, 400, "InvalidParameter", "model"),
    (
        {"model": "qwen-plus", "input": {"prompt": "hi"}, "parameters": {"temperature": "hot"}},
        400,
        "InvalidParameter",
        "parameters.temperature",
    ),
    (
        {"model": "qwen-plus", "input": {"messages": [{"role": "user", "content": ""}]}},
        400,
        "InvalidParameter",
        "messages[0].content must not be empty",
    ),
    (
        {"model": "qwen-plus", "input": {"messages": [{"role": "robot", "content": "hi"}]}},
        400,
        "InvalidParameter",
        "input.messages.0.role",
    ),
    (
        {
            "model": "qwen-plus",
            "input": {
                "messages": [{"role": "user", "content": [{"image": "http://x/y.png"}, {"text": "hi"}]}]
            },
        },
        400,
        "InvalidParameter",
        "'image' part: this model supports text input only",
    ),
    ({"model": "qwen-plus", "input": {"prompt": "hi", "history": []}}, 400, "InvalidParameter", "history"),
    (
        {"model": "qwen-plus", "input": {"prompt": "hi"}, "parameters": {"stop": [[1, 2]]}},
        400,
        "InvalidParameter",
        "Token ids in stop",
    ),
    (
        {"model": "qwen-plus", "input": {"prompt": "hi"}, "parameters": {"enable_search": True}},
        400,
        "InvalidParameter",
        "This model does not support enable_search.",
    ),
    (
        {
            "model": "qwen-plus",
            "input": {"prompt": "hi"},
            "parameters": {"enable_thinking": True, "response_format": {"type": "json_object"}},
        },
        400,
        "InvalidParameter",
        "Json mode response is not supported when enable_thinking is true",
    ),
    ({"model": "nope", "input": {"prompt": "hi"}}, 404, "ModelNotFound", "The model `nope` does not exist"),
]


@pytest.mark.parametrize(("body", "status", "code", "message"), BAD_INPUTS)
def test_bad_input_gets_a_native_error(
    target: Target, body: bytes | dict[str, Any], status: int, code: str, message: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = httpx.post(target.url, content=content, headers=SSE)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert list(data) == ["code", "message", "request_id"]
    assert data["code"] == code
    assert message in data["message"]


def test_routing_and_auth_errors(target: Target) -> None:
    cases = [
        (httpx.post(target.url, json=SEED_CURL_BODY), 401, "InvalidApiKey"),
        (
            httpx.post(target.url, json=SEED_CURL_BODY, headers={"Authorization": "Bearer no"}),
            401,
            "InvalidApiKey",
        ),
        (httpx.get(target.url, headers=AUTH), 405, "MethodNotAllowed"),
        (httpx.post(target.live.base_url + "/api/v1/services/nope", headers=AUTH), 404, "InvalidURL"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code)
        assert list(response.json()) == ["code", "message", "request_id"]


def test_oversized_body() -> None:
    settings = Settings(api_keys=(API_KEY,), max_body_bytes=1000)
    live, running = serve(app_with(FakeEngine(), settings=settings))
    try:
        body = body_with()
        body["input"] = {"prompt": "x" * 2000}
        response = httpx.post(live.base_url + GENERATION, json=body, headers=SSE)
    finally:
        stop(running)
    assert response.status_code == 413
    assert response.json()["code"] == "InvalidParameter"


class _Throttled(StaticKeys):
    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission:
        raise RateLimited("Requests rate limit exceeded", code="Throttling.RateQuota", retry_after=3)


def test_throttling_and_overload() -> None:
    engine = FakeEngine(max_queue=0)
    runtimes = {"default": Runtime(engine, ChatFormat(engine.tokenizer))}
    settings = Settings(api_keys=(API_KEY,))
    for gate, status, code, retry_after in [
        (_Throttled([API_KEY]), 429, "Throttling.RateQuota", "3"),
        (StaticKeys([API_KEY]), 503, "ModelUnavailable", None),
    ]:
        live, running = serve(create_app(settings, runtimes=runtimes, gate=gate))
        try:
            response = httpx.post(live.base_url + GENERATION, json=SEED_CURL_BODY, headers=SSE)
        finally:
            stop(running)
        assert (response.status_code, response.json()["code"]) == (status, code)
        assert response.headers.get("retry-after") == retry_after


class _FailingEngine(FakeEngine):
    """Fails after ``after`` engine events, once the response has started."""

    def __init__(self, error: Exception, after: int = 4) -> None:
        super().__init__()
        self.error = error
        self.after = after

    def submit(self, request: EngineRequest) -> FakeSequence:
        inner = super().submit(request)
        error, after = self.error, self.after

        class Failing(FakeSequence):
            def __init__(self) -> None:
                pass

            def cancel(self) -> None:
                inner.cancel()

            async def settle(self, limit_s: float) -> Sequence[EngineEvent]:
                return await inner.settle(limit_s)

            def resume(self, tokens: Sequence[int]) -> None:
                inner.resume(tokens)

            async def __aiter__(self) -> AsyncIterator[EngineEvent]:
                n = 0
                async for event in inner:
                    if n == after:
                        raise error
                    n += 1
                    yield event

        return Failing()


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (EngineFailure("The model failed while generating."), "The model failed while generating."),
        (RuntimeError("secret detail"), "The model failed while generating."),
    ],
)
def test_error_after_the_stream_started_is_an_error_block(error: Exception, message: str) -> None:
    live, running = serve(app_with(_FailingEngine(error)))
    try:
        response = httpx.post(live.base_url + GENERATION, json=SEED_CURL_BODY, headers=SSE)
    finally:
        stop(running)
    assert response.status_code == 200
    blocks = parse_blocks(response.content)
    *results, failure = blocks
    assert all(b.event == "result" for b in results) and results
    rid = results[0].data["request_id"]
    expected = {"code": "InternalError", "message": message, "request_id": rid}
    assert failure.raw == (
        b"id:%d\nevent:error\n:HTTP_STATUS/500\ndata:%b\n\n" % (len(blocks), orjson.dumps(expected))
    )


# Hostile values that used to be accepted (1e300 reached the C sampler as inf; 500k stop strings
# stalled the event loop), each with the message that now refuses it.
OUT_OF_RANGE = [
    ({"repetition_penalty": 1e300}, "Repetition_penalty should be in (0.0, 2.0]"),
    ({"repetition_penalty": 2.5}, "Repetition_penalty should be in (0.0, 2.0]"),
    ({"presence_penalty": 1e300}, "Presence_penalty should be in [-2.0, 2.0]"),
    ({"temperature": -1e300}, "Temperature should be in [0.0, 2.0)"),
    ({"top_p": 1e300}, "Range of top_p should be (0.0, 1.0]"),
    ({"top_k": -1}, "top_k be greater than or equal to 0"),
    ({"seed": 2**64 - 1}, "Range of seed should be [0, 9223372036854775807]"),
    ({"stop": ["s"] * 17}, "The stop parameter must have at most 16 strings"),
    ({"stop": ["s"] * 500_000}, "The stop parameter must have at most 16 strings"),
    ({"stop": "s" * 257}, "Each string of the stop parameter must be at most 256 characters"),
]


def test_out_of_range_parameters_get_a_native_400(target: Target) -> None:
    for parameters, message in OUT_OF_RANGE:
        response = httpx.post(target.url, json=body_with(**parameters), headers=SSE)
        assert response.status_code == 400, (parameters, response.text[:200])
        data = response.json()
        assert list(data) == ["code", "message", "request_id"]
        assert data["code"] == "InvalidParameter"
        assert message in data["message"]
    at_bounds = body_with(
        repetition_penalty=2.0,
        presence_penalty=2.0,
        top_k=2**64 - 1,
        seed=2**63 - 1,
        stop=["s" * 256] + [f"never said {i}" for i in range(15)],
        max_tokens=8,
    )
    response = httpx.post(target.url, json=at_bounds, headers=AUTH)
    assert response.status_code == 200, response.text


def test_workspace_header_longer_than_the_store_keeps_is_a_native_400(target: Target) -> None:
    response = httpx.post(
        target.url, json=SEED_CURL_BODY, headers={**SSE, "X-DashScope-WorkSpace": "w" * 201}
    )
    assert response.status_code == 400
    data = response.json()
    assert (list(data), data["code"]) == (["code", "message", "request_id"], "InvalidParameter")
    assert "X-DashScope-WorkSpace header must be at most 200 characters" in data["message"]
    ok = httpx.post(target.url, json=SEED_CURL_BODY, headers={**SSE, "X-DashScope-WorkSpace": "w" * 200})
    assert ok.status_code == 200
