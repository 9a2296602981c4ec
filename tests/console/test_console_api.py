"""What the console reads beyond the existing admin API: who is logged in, a normal key's own
usage, the engines' live figures, the workspace filter and the prices in the model cards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer, serve, stop
from tests.platform.conftest import ADMIN_KEY, cli
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform.billing import Price
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CHAT = "/compatible-mode/v1/chat/completions"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    engine = FakeEngine()
    settings = Settings(
        api_keys=(ADMIN_KEY,),
        data_dir=tmp_path / "data",
        prices={"qwen3-8b": Price(input=Decimal("0.8"), output=Decimal(2), thinking_output=Decimal(8))},
    )
    app = create_app(settings, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    server, running = serve(app)
    try:
        yield server
    finally:
        stop(running)


def _key(http: httpx.Client, **fields: object) -> tuple[str, dict[str, str]]:
    made = http.post("/admin/v1/keys", json={"name": "k", **fields}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return made.json()["id"], {"authorization": f"Bearer {made.json()['key']}"}


def _call(http: httpx.Client, headers: dict[str, str], model: str = "qwen3-8b") -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = http.post(CHAT, json=body, headers=headers)
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")


def test_me_names_the_caller(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        key_id, user = _key(http, workspace="ws1")
        assert http.get("/admin/v1/me", headers=user).json() == {
            "id": key_id,
            "name": "k",
            "workspace": "ws1",
            "admin": False,
        }
        operator = http.get("/admin/v1/me", headers=ADMIN).json()
        assert operator["admin"] is True and operator["workspace"] is None
        missing = http.get("/admin/v1/me")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        wrong = http.get("/admin/v1/me", headers={"authorization": "Bearer sk-nope"})
        assert wrong.status_code == 401


def test_a_normal_key_reads_its_own_usage_only(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        mine, me = _key(http)
        other, them = _key(http)
        _call(http, me)
        _call(http, me)
        _call(http, them)
        own = http.get("/admin/v1/me/usage", headers=me).json()["data"]
        assert [(r["model"], r["calls"]) for r in own] == [("qwen3-8b", 2)]
        # The same rows as the admin's report of that key, computed by the same code.
        assert own == http.get("/admin/v1/usage", params={"key": mine}, headers=ADMIN).json()["data"]
        asked = http.get("/admin/v1/me/usage", params={"key": other}, headers=me)
        assert asked.status_code == 403 and asked.json()["error"]["code"] == "AccessDenied"
        assert http.get("/admin/v1/me/usage", params={"key": mine}, headers=me).json()["data"] == own
        assert http.get("/admin/v1/me/usage", params={"since": "soon"}, headers=me).status_code == 400
        assert http.get("/admin/v1/me/usage").status_code == 401
        # The rest of the admin API stays closed to it.
        assert http.get("/admin/v1/engines", headers=me).status_code == 403
        assert http.get("/admin/v1/usage", headers=me).status_code == 403


def test_usage_filtered_by_workspace(live: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        _, one = _key(http, workspace="ws-a")
        _, two = _key(http, workspace="ws-b")
        _call(http, one)
        _call(http, two)
        _call(http, two)
        rows = http.get("/admin/v1/usage", params={"workspace": "ws-b"}, headers=ADMIN).json()["data"]
        assert [r["calls"] for r in rows] == [2]
        grouped = http.get("/admin/v1/usage", params={"by": "workspace"}, headers=ADMIN).json()["data"]
        b_row = next(r for r in grouped if r["workspace"] == "ws-b")
        assert {k: v for k, v in b_row.items() if k != "workspace"} == rows[0]
        bad = http.get("/admin/v1/usage", params={"workspace": "w\u0001"}, headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "workspace"
        long = http.get("/admin/v1/usage", params={"workspace": "w" * 201}, headers=ADMIN)
        assert long.status_code == 400
    # The CLI filters the same way, with the same code.
    config = tmp_path / "cli.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n')
    done = cli("usage", "--config", str(config), "--workspace", "ws-b", "--json")
    assert [json.loads(line) for line in done.stdout.splitlines()] == rows


def _gauges(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("engine") == "default":
                out[sample.name] = sample.value
    return out


def test_engines_report_the_figures_of_metrics(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        _call(http, ADMIN)
        body = http.get("/admin/v1/engines", headers=ADMIN).json()
        metrics = _gauges(http.get("/metrics").text)
        (engine,) = body["data"]
        assert engine["name"] == "default" and engine["state"] == "up" and body["at"] > 0
        assert engine["active_sequences"] == metrics["thinkserve_engine_active_sequences"]
        assert engine["queue_depth"] == metrics["thinkserve_engine_queue_depth"]
        assert engine["sampled_tokens"] == metrics["thinkserve_engine_sampled_tokens_total"] > 0
        assert engine["restarts"] == metrics["thinkserve_engine_restarts_total"]
        assert metrics["thinkserve_engine_up"] == 1.0
        assert http.get("/admin/v1/engines").status_code == 401


def test_model_cards_carry_the_configured_price(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        card = http.get("/compatible-mode/v1/models/qwen3-8b", headers=ADMIN).json()
        assert card["thinkserve"]["price"] == {
            "input": "0.8",
            "cached_input": "0.8",
            "output": "2",
            "thinking_output": "8",
        }
        other = http.get("/compatible-mode/v1/models/qwen-plus", headers=ADMIN).json()
        assert other["thinkserve"]["price"] is None
