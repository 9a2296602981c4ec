"""Metering without a database: the one usage record, metrics fed whichever gate runs, the port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API_KEY, app_with, serve, stop
from thinkserve.config import load_settings
from thinkserve.core.errors import Arrearage, RateLimited
from thinkserve.core.events import AnswerDelta, Event, Finished, ReasoningDelta
from thinkserve.core.types import Usage
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.monitor.metrics import Metrics
from thinkserve.platform.journal import decode, encode
from thinkserve.platform.limits import Limits
from thinkserve.platform.metering import ObservedGate, UsageRecord, metered
from thinkserve.platform.port import Admission, Principal
from thinkserve.platform.static_keys import StaticKeys

BEARER = f"Bearer {API_KEY}"


async def events() -> AsyncIterator[Event]:
    yield ReasoningDelta("r", Usage(10, 2, 1, 1))
    yield AnswerDelta("a", Usage(10, 2, 3, 1))
    yield Finished("stop", Usage(10, 2, 3, 1), True)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.anyio
async def test_static_keys_feed_metrics_through_metering() -> None:
    inner, metrics = StaticKeys([API_KEY]), Metrics()
    gate = ObservedGate(inner, metrics)
    principal = await gate.authenticate(BEARER, "ws")
    admission = await gate.admit(principal, "m", 10)
    assert sample(metrics, "thinkserve_requests_in_flight", model="m") == 1.0
    async for _ in metered(gate, admission, True, events()):
        pass
    assert sample(metrics, "thinkserve_requests_in_flight", model="m") == 0.0
    assert sample(metrics, "thinkserve_requests_total", model="m", status="ok", mode="thinking") == 1.0
    assert sample(metrics, "thinkserve_tokens_total", model="m", kind="cached") == 2.0
    assert sample(metrics, "thinkserve_time_per_output_token_seconds_count", model="m") == 1.0
    [record] = inner.records
    assert (record.key_id, record.workspace, record.status) == ("static-0", "ws", "ok")
    assert (record.input_tokens, record.output_tokens, record.reasoning_tokens) == (10, 3, 1)
    assert record.ttft_ms is not None and record.duration_ms >= record.ttft_ms
    assert record.cost_nano == 0
    assert gate.administration() is None


class _Refusing(StaticKeys):
    def __init__(self, error: Exception) -> None:
        super().__init__([API_KEY])
        self.error = error

    async def admit(self, principal: Principal, model: str, prompt_tokens: int) -> Admission:
        raise self.error


@pytest.mark.anyio
async def test_refusals_are_counted_by_code() -> None:
    metrics = Metrics()
    for error in (RateLimited("slow down", code="Throttling.BurstRate"), Arrearage()):
        gate = ObservedGate(_Refusing(error), metrics)
        with pytest.raises(type(error)):
            await gate.admit(await gate.authenticate(BEARER, None), "m", 1)
    assert sample(metrics, "thinkserve_rejected_total", model="m", code="Throttling.BurstRate") == 1.0
    assert sample(metrics, "thinkserve_rejected_total", model="m", code="Arrearage") == 1.0
    assert sample(metrics, "thinkserve_requests_in_flight", model="m") is None


def test_admission_releases_its_hooks_once() -> None:
    freed: list[str] = []
    admission = Admission(Principal("k", "n"), "m")
    admission.on_release(lambda: freed.append("slots"))
    admission.on_release(lambda: freed.append("gauge"))
    admission.release()
    admission.release()
    assert freed == ["slots", "gauge"]


def test_one_record_from_journal_line_to_report_hour() -> None:
    record = UsageRecord(
        id="9f3c",
        key_id="key_1a2b3c4d5e6f",
        workspace=None,
        model="qwen-plus",
        thinking=True,
        status="ok",
        input_tokens=12,
        cached_tokens=0,
        output_tokens=40,
        reasoning_tokens=31,
        ttft_ms=12.3,
        duration_ms=210.5,
        at=1732560000.123,
    )
    line = encode(record)
    assert line == (
        b'{"id":"9f3c","key":"key_1a2b3c4d5e6f","ws":null,"model":"qwen-plus","think":true,'
        b'"status":"ok","in":12,"cached":0,"out":40,"reason":31,"ttft":12.3,"dur":210.5,'
        b'"at":1732560000.123}\n'
    )
    assert decode(line) == record
    assert record.hour == 1732557600 and record.usage == Usage(12, 0, 40, 31)


def test_config_builds_the_platform_settings(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        f'[server]\napi_keys = ["sk-a"]\ndata_dir = "{tmp_path}"\nredis_url = "redis://r"\n'
        '[limits."*"]\nrpm = 6\n'
    )
    platform = load_settings(f, environ={}).platform
    assert platform.bootstrap_keys == ("sk-a",) and platform.redis_url == "redis://r"
    assert platform.limits == {"*": Limits(rpm=6)} and platform.prices == {}
    assert platform.database_url is None and platform.journal_dir == tmp_path / "journal"


def test_metrics_and_admin_over_http_with_static_keys() -> None:
    live, running = serve(app_with(FakeEngine()))
    try:
        with httpx.Client(base_url=live.base_url, timeout=30) as http:
            headers = {"authorization": BEARER}
            body = {
                "model": "qwen3-8b",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": True,
                "enable_thinking": True,
            }
            chat = http.post("/compatible-mode/v1/chat/completions", json=body, headers=headers)
            assert chat.status_code == 200 and chat.text.endswith("data: [DONE]\n\n")
            metrics = http.get("/metrics").text
            # StaticKeys keys are not admin keys: the admin API refuses them before looking further.
            denied = http.get("/admin/v1/keys", headers=headers)
    finally:
        stop(running)
    assert 'thinkserve_requests_total{mode="thinking",model="qwen3-8b",status="ok"} 1.0' in metrics
    assert 'thinkserve_requests_in_flight{model="qwen3-8b"} 0.0' in metrics
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "message": "This API key may not use the admin API.",
        "type": "AccessDenied",
        "param": None,
        "code": "AccessDenied",
    }


def _modules_after(imports: str) -> list[str]:
    """The thinkserve and starlette modules loaded by ``import <imports>`` in a fresh interpreter."""
    probe = f"import sys, {imports}; print(*sys.modules, sep=chr(10))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.split() if m.startswith(("thinkserve", "starlette"))]


def test_layering_of_the_platform_and_its_cli() -> None:
    platform = _modules_after("thinkserve.platform.stored_keys, thinkserve.platform.static_keys")
    assert not [
        m for m in platform if m.startswith(("thinkserve.config", "thinkserve.api", "thinkserve.monitor"))
    ]
    cli = _modules_after("thinkserve.cli_platform, thinkserve.platform.administration")
    assert not [m for m in cli if m.startswith(("thinkserve.api", "thinkserve.app", "starlette"))]
