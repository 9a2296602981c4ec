"""Fuzzing both dialects from the served OpenAPI document (schemathesis): whatever the body, the
server answers below 500 and never hangs. The scripted engine serves, so every accepted request
runs the whole pipeline (parse, validate, render, decode, split, meter, frame)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import API_KEY, LiveServer, app_with, serve, stop
from thinkserve.engine.fake.engine import FakeEngine

log = logging.getLogger(__name__)
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Per operation and mode; a longer campaign: THINKSERVE_FUZZ_EXAMPLES=1000 pytest tests/api/test_fuzz.py
EXAMPLES = int(os.environ.get("THINKSERVE_FUZZ_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[LiveServer]:
    live, running = serve(app_with(FakeEngine()))
    try:
        yield live
    finally:
        stop(running)


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json")


def test_the_document_describes_both_dialects(fuzz_server: LiveServer) -> None:
    doc = httpx.get(f"{fuzz_server.base_url}/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert {
        "/compatible-mode/v1/chat/completions",
        "/api/v1/services/aigc/text-generation/generation",
    } <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert "enable_thinking" in schemas["ChatCompletionRequest"]["properties"]
    assert "thinking_budget" in schemas["Parameters"]["properties"]


def test_no_input_gets_a_5xx(fuzz_server: LiveServer) -> None:
    """Every operation of the document: bodies that match its schemas and bodies that break them."""
    api = schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json")
    seen: dict[str, int] = {}
    for result in api.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, seen)
    generation = [label for label in seen if label.startswith("POST")]
    assert len(generation) == 2, seen
    # Both dialects got dozens of inputs of both kinds (the count is reported with -s / in the log).
    assert all(seen[label] >= min(EXAMPLES, 60) for label in generation), seen
    log.info("fuzzed inputs per operation: %s", seen)


def _fuzz(operation: Any, mode: Any, seen: dict[str, int]) -> None:
    label = operation.label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        response = case.call(headers=AUTH, timeout=30)
        seen[label] = seen.get(label, 0) + 1
        assert response.status_code < 500, (label, case.body, response.text[:500])

    try:
        check()
    except Unsatisfiable:
        # An operation without inputs (GET /health) has nothing to break in negative mode.
        assert mode == GenerationMode.NEGATIVE and operation.method.upper() == "GET", label
