"""The admin JSON API and /metrics over HTTP."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx

from tests.conftest import serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform.billing import Price
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

from .conftest import ADMIN_KEY

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def test_admin_api_and_metrics(tmp_path: Path) -> None:
    engine = FakeEngine()
    settings = Settings(
        api_keys=(ADMIN_KEY,),
        data_dir=tmp_path / "data",
        prices={"qwen3-8b": Price(input=Decimal(1), output=Decimal(2), thinking_output=Decimal(8))},
    )
    app = create_app(settings, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    live, running = serve(app)
    try:
        with httpx.Client(base_url=live.base_url, timeout=30) as http:
            new = {"name": "ops", "tpm": 600_000, "quota_tokens": 10}
            made = http.post("/admin/v1/keys", json=new, headers=ADMIN)
            assert made.status_code == 201
            created = made.json()
            secret, key_id = created["key"], created["id"]
            assert created["tpm"] == 600_000 and created["quota_tokens"] == 10
            user = {"authorization": f"Bearer {secret}"}
            assert http.get("/admin/v1/usage", headers=user).json()["error"]["code"] == "AccessDenied"
            assert http.get("/admin/v1/usage").status_code == 401
            for bad in ({"name": ""}, {"name": "x", "rpm": -1}, {"name": "x", "colour": 1}):
                assert http.post("/admin/v1/keys", json=bad, headers=ADMIN).status_code == 400
            for thinking in (True, False):
                chat = http.post(
                    "/compatible-mode/v1/chat/completions",
                    json={
                        "model": "qwen3-8b",
                        "messages": [{"role": "user", "content": "hi"}],
                        "stream": True,
                        "enable_thinking": thinking,
                    },
                    headers=user,
                )
                assert chat.status_code == 200 and chat.text.endswith("data: [DONE]\n\n")
            rows = http.get("/admin/v1/usage", params={"by": "key,mode"}, headers=ADMIN).json()["data"]
            assert {(r["key"], r["mode"], r["calls"]) for r in rows} == {
                (key_id, "thinking", 1),
                (key_id, "non-thinking", 1),
            }
            thinking_row = next(r for r in rows if r["mode"] == "thinking")
            assert thinking_row["reasoning_tokens"] > 0 and Decimal(thinking_row["cost"]) > 0
            assert thinking_row["latency_ms"]["p50"] is not None
            assert thinking_row["ttft_ms"]["p95"] is not None
            assert http.get("/admin/v1/usage", params={"since": "soon"}, headers=ADMIN).status_code == 400
            listed = http.get("/admin/v1/keys", headers=ADMIN).json()["data"]
            assert [k["id"] for k in listed] == [key_id] and Decimal(listed[0]["spent"]) > 0
            metrics = http.get("/metrics").text
            assert 'thinkserve_requests_total{mode="thinking",model="qwen3-8b",status="ok"} 1.0' in metrics
            assert 'thinkserve_tokens_total{kind="reasoning",model="qwen3-8b"}' in metrics
            assert "thinkserve_time_to_first_token_seconds_bucket" in metrics
            assert "thinkserve_time_per_output_token_seconds_bucket" in metrics
            assert 'thinkserve_engine_active_sequences{engine="default"} 0.0' in metrics
            assert http.delete(f"/admin/v1/keys/{key_id}", headers=ADMIN).json()["revoked"] is True
            assert http.delete(f"/admin/v1/keys/{key_id}", headers=ADMIN).status_code == 404
            assert http.get("/compatible-mode/v1/models", headers=user).status_code == 401
    finally:
        stop(running)
