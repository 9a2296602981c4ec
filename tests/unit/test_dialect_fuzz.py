"""Hypothesis on both dialects' converters and the service's checks: whatever JSON arrives, parsing
and preparing it either give a request or raise the client's error (``ThinkserveError``, which
each dialect renders as a 4xx) — never any other exception, which would be a 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from thinkserve.api.dashscope.dialect import DashScopeDialect
from thinkserve.api.openai.dialect import OpenAIDialect
from thinkserve.catalogue.spec import load_catalogue
from thinkserve.core.errors import ThinkserveError
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.service.generation import GenerationService, Runtime
from thinkserve.thinking.chat_format import ChatFormat

EXAMPLES = 400

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["<|im_end|>", "/think", "/no_think", "</think>", "user", "system", "assistant", ""]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "developer", 3, None])
content = st.one_of(
    st.text(max_size=60),
    st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", 1]), "text": json_values})),
    json_values,
)
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": content}), max_size=4) | json_values
models = st.sampled_from(["qwen-plus", "qwq-plus", "qwen3-8b", "deepseek-r1", "nope", "", 7])
# Keys both dialects know, with values of any type.
params = st.dictionaries(
    st.sampled_from(
        [
            "stream",
            "enable_thinking",
            "thinking_budget",
            "max_tokens",
            "temperature",
            "top_p",
            "top_k",
            "seed",
            "stop",
            "presence_penalty",
            "repetition_penalty",
            "n",
            "result_format",
            "incremental_output",
            "stream_options",
            "max_completion_tokens",
            "tools",
            "response_format",
        ]
    ),
    json_values,
    max_size=6,
)


def service() -> GenerationService:
    engine = FakeEngine()
    return GenerationService(load_catalogue(), {"default": Runtime(engine, ChatFormat(engine.tokenizer))})


def check(dialect: Any, body: bytes, headers: Headers, generation: GenerationService) -> None:
    try:
        call = dialect.parse(body, headers)
        generation.prepare(call.chat)
    except ThinkserveError:
        pass


@given(model=models, msgs=messages, extra=params, raw=st.booleans(), junk=json_values)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_openai_bodies_parse_or_get_a_client_error(
    model: Any, msgs: Any, extra: dict[str, Any], raw: bool, junk: Any
) -> None:
    body = junk if raw else {"model": model, "messages": msgs, **extra}
    check(OpenAIDialect(), json.dumps(body).encode(), Headers(), service())


@given(model=models, msgs=messages, extra=params, raw=st.booleans(), junk=json_values, sse=st.booleans())
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_dashscope_bodies_parse_or_get_a_client_error(
    model: Any, msgs: Any, extra: dict[str, Any], raw: bool, junk: Any, sse: bool
) -> None:
    body = junk if raw else {"model": model, "input": {"messages": msgs}, "parameters": extra}
    headers = Headers({"x-dashscope-sse": "enable"} if sse else {})
    check(DashScopeDialect(), json.dumps(body).encode(), headers, service())


@given(data=st.binary(max_size=200))
@settings(max_examples=EXAMPLES, deadline=None)
def test_bytes_that_are_not_json_get_a_client_error(data: bytes) -> None:
    for dialect in (OpenAIDialect(), DashScopeDialect()):
        check(dialect, data, Headers(), service())
