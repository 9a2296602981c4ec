"""Search calls are metered per key and model and billed per call, outside the free token quota:
over HTTP with the stored gate (SQLite and PostgreSQL), through the store, the journal and reports."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import serve, stop
from tests.search.conftest import write_docs
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform import database, keys
from thinkserve.platform.billing import Price, PriceError, parse_prices, search_cost
from thinkserve.platform.journal import decode, encode
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.report import aggregate
from thinkserve.platform.store import Store
from thinkserve.search.calls import MAX_SEARCHES
from thinkserve.search.settings import SearchSettings
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

from .conftest import ADMIN_KEY

SEARCH_PRICE = {"qwen-plus": Price(input=Decimal(0), output=Decimal(0), search=Decimal("0.004"))}


def test_search_price_is_per_call() -> None:
    assert search_cost(SEARCH_PRICE["qwen-plus"], 3) == 12_000_000
    assert search_cost(SEARCH_PRICE["qwen-plus"], 0) == 0
    assert search_cost(Price(input=Decimal(1), output=Decimal(1)), 5) == 0
    assert search_cost(None, 5) == 0
    assert parse_prices({"m": {"input": 1, "output": 2, "search": "0.01"}})["m"].search == Decimal("0.01")
    with pytest.raises(PriceError):
        parse_prices({"m": {"input": 1, "output": 2, "search": -1}})


def _record(n: int, searches: int) -> UsageRecord:
    return UsageRecord(
        id=f"{n:032x}",
        key_id="key_x",
        workspace=None,
        model="qwen-plus",
        thinking=False,
        status="ok",
        input_tokens=100,
        cached_tokens=0,
        output_tokens=10,
        reasoning_tokens=0,
        ttft_ms=1.0,
        duration_ms=2.0,
        at=1_700_000_000.0 + n,
        search_calls=searches,
    )


def test_journal_keeps_search_calls_and_reads_old_lines() -> None:
    record = _record(1, 1)
    assert decode(encode(record)) == record
    old = encode(record).replace(b',"search":1', b"")
    assert decode(old) == replace(record, search_calls=0)


@pytest.mark.anyio
async def test_store_bills_searches_beyond_the_free_quota(db: str | None, tmp_path: Path) -> None:
    store = await Store.open(database.database_url(db, tmp_path / "data"))
    try:
        key, _ = keys.mint("bob", quota_tokens=1_000_000)
        await store.add_key(key)
        records = [replace(_record(i, s), key_id=key.id) for i, s in enumerate((1, 0, 2))]
        added = await store.write(records, SEARCH_PRICE)
        # Tokens are free (within the quota and priced 0); 3 searches at 0.004 are not.
        assert added == {key.id: 12_000_000}
        rows = await store.rows(1_699_999_000)
        assert [r.search_calls for r in rows] == [1, 0, 2]
        assert [r.cost_nano for r in rows] == [4_000_000, 0, 8_000_000]
        [hourly] = aggregate(rows, by=["key"])
        assert hourly.search_calls == 3
        assert hourly.to_json()["search_calls"] == 3
    finally:
        await store.close()


async def _rows(url: str, count: int) -> list[UsageRecord]:
    store = Store(database.make_engine(url))
    try:
        deadline = time.monotonic() + 30
        while True:
            rows = await store.rows(0)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.1)
    finally:
        await store.close()


def test_http_requests_record_their_searches(db: str | None, tmp_path: Path) -> None:
    engine = FakeEngine()
    settings = Settings(
        api_keys=(ADMIN_KEY,),
        data_dir=tmp_path / "data",
        database_url=db,
        prices=SEARCH_PRICE,
        search=SearchSettings(docs=write_docs(tmp_path / "docs")),
    )
    app = create_app(settings, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    live, running = serve(app)
    asked = {
        "forced": {"enable_search": True, "search_options": {"forced_search": True}},
        "hit": {"enable_search": True},
        "miss": {"enable_search": True, "search_options": {"enable_source": True}},
        "off": {},
        "thrice": {"enable_search": True},
    }
    try:
        for name, extra in asked.items():
            question = "flamingo keys" if name != "miss" else "quasars"
            engine.tool_rounds = 10 if name == "thrice" else 1
            body = {"model": "qwen-plus", "messages": [{"role": "user", "content": question}], **extra}
            headers = {"authorization": f"Bearer {ADMIN_KEY}", "x-dashscope-workspace": name}
            r = httpx.post(live.base_url + "/compatible-mode/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 200, r.text
        # The native dialect, streamed: metered the same way.
        native = {
            "model": "qwen-plus",
            "input": {"messages": [{"role": "user", "content": "flamingo billing"}]},
            "parameters": {"enable_search": True, "search_options": {"forced_search": True}},
        }
        headers = {
            "authorization": f"Bearer {ADMIN_KEY}",
            "x-dashscope-workspace": "native",
            "x-dashscope-sse": "enable",
        }
        r = httpx.post(
            live.dashscope_base + "services/aigc/text-generation/generation", json=native, headers=headers
        )
        assert r.status_code == 200 and '"plugins":{"search":{"count":1,"strategy":"turbo"}}' in r.text
        rows = asyncio.run(_rows(database.database_url(db, settings.data_dir), len(asked) + 1))
    finally:
        stop(running)
    by_name = {row.workspace: row for row in rows}
    # "hit", "miss" and "thrice": the model called the search itself, which counts even when it
    # finds nothing; "thrice" called it until it had no searches left.
    assert {n: by_name[n].search_calls for n in [*asked, "native"]} == {
        "forced": 1,
        "hit": 1,
        "miss": 1,
        "off": 0,
        "thrice": MAX_SEARCHES,
        "native": 1,
    }
    assert {n: by_name[n].cost_nano for n in [*asked, "native"]} == {
        "forced": 4_000_000,
        "hit": 4_000_000,
        "miss": 4_000_000,
        "off": 0,
        "thrice": MAX_SEARCHES * 4_000_000,
        "native": 4_000_000,
    }
    assert all(row.model == "qwen-plus" and row.key_id for row in rows)
