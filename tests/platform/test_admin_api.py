"""The admin JSON API and /metrics over HTTP."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx

from tests.conftest import LiveServer, _Running, serve, stop
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


def _admin_server(db: str | None, tmp_path: Path) -> tuple[LiveServer, _Running]:
    engine = FakeEngine()
    settings = Settings(api_keys=(ADMIN_KEY,), data_dir=tmp_path / "data", database_url=db)
    return serve(create_app(settings, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))}))


def _refused(response: httpx.Response, param: str, status: int = 400) -> str:
    """The admin API's error shape, naming ``param``; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    error = body["error"]
    assert (error["code"], error["param"]) == ("invalid_parameter_error", param), error
    return str(error["message"])


# Each value has the wrong JSON type or cannot fit its column (Integer, BigInteger, String(200)).
BAD_KEY_FIELDS: list[tuple[str, object]] = [
    ("admin", "false"),
    ("admin", "true"),
    ("admin", 0),
    ("admin", 1),
    ("rpm", True),
    ("rpm", 1.5),
    ("rpm", "60"),
    ("rpm", 2**31),
    ("concurrency", 2**31),
    ("rps", -1),
    ("tpm", 2**63),
    ("tps", 2**64 - 1),
    ("quota_tokens", 1e3),
    ("spend_limit", True),
    ("spend_limit", [1]),
    ("spend_limit", "1e30"),
    ("spend_limit", 1e300),
    ("spend_limit", "NaN"),
    ("spend_limit", "-1"),
    ("name", "n" * 201),
    ("name", "a\u0000b"),
    ("workspace", "w" * 201),
    ("workspace", "w\u0000"),
    ("workspace", 7),
]


def test_admin_api_refuses_loose_types_and_values_its_store_cannot_hold(
    db: str | None, tmp_path: Path
) -> None:
    live, running = _admin_server(db, tmp_path)
    try:
        with httpx.Client(base_url=live.base_url, timeout=30) as http:
            for field, value in BAD_KEY_FIELDS:
                body = {"name": "x", field: value}
                _refused(http.post("/admin/v1/keys", json=body, headers=ADMIN), field)
            assert http.get("/admin/v1/keys", headers=ADMIN).json()["data"] == []
            widest = {
                "name": "n" * 200,
                "workspace": "w" * 200,
                "admin": False,
                "rpm": 2**31 - 1,
                "tpm": 2**63 - 1,
                "quota_tokens": 0,
                "spend_limit": "9223372036",
            }
            made = http.post("/admin/v1/keys", json=widest, headers=ADMIN)
            assert made.status_code == 201, made.text
            assert made.json()["admin"] is False and made.json()["tpm"] == 2**63 - 1
            listed = http.get("/admin/v1/keys", headers=ADMIN).json()["data"]
            assert [(k["admin"], k["rpm"], k["workspace"]) for k in listed] == [(False, 2**31 - 1, "w" * 200)]
    finally:
        stop(running)


def test_admin_usage_refuses_absurd_query_values(db: str | None, tmp_path: Path) -> None:
    live, running = _admin_server(db, tmp_path)
    try:
        with httpx.Client(base_url=live.base_url, timeout=30) as http:
            for since in (
                "1e30",
                "-1e30",
                "1e309",
                "nan",
                "inf",
                "-1",
                "99999999999999999999999d",
                "0001-01-01",
            ):
                message = _refused(
                    http.get("/admin/v1/usage", params={"since": since}, headers=ADMIN), "since"
                )
                assert "out of range" in message
            message = _refused(http.get("/admin/v1/usage", params={"until": "1e30"}, headers=ADMIN), "until")
            assert "out of range" in message
            assert "not a time" in _refused(
                http.get("/admin/v1/usage", params={"since": "x" * 10_000}, headers=ADMIN), "since"
            )
            _refused(http.get("/admin/v1/usage", params={"model": "m\u0000"}, headers=ADMIN), "model")
            _refused(http.get("/admin/v1/usage", params={"model": "m" * 201}, headers=ADMIN), "model")
            _refused(http.get("/admin/v1/usage", params={"key": "k" * 65}, headers=ADMIN), "key")
            _refused(http.get("/admin/v1/usage", params={"by": "colour"}, headers=ADMIN), "by")
            ok = http.get("/admin/v1/usage", params={"since": "0", "until": "253402300799"}, headers=ADMIN)
            assert (ok.status_code, ok.json()["data"]) == (200, [])
            assert http.delete("/admin/v1/keys/%00", headers=ADMIN).status_code == 404
            too_wide = {**ADMIN, "X-DashScope-WorkSpace": "w" * 201}
            _refused(http.get("/admin/v1/keys", headers=too_wide), "X-DashScope-WorkSpace")
    finally:
        stop(running)
