"""Server processes: the CLI, limits shared through Redis by two servers, and ``kill -9`` mid-load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from thinkserve.platform import database
from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.store import Store

from .conftest import ADMIN_KEY, cli, start_server, write_config

CHAT = "/compatible-mode/v1/chat/completions"
NATIVE = "/api/v1/services/aigc/text-generation/generation"


def create_key(config: Path, *flags: str) -> str:
    out = cli("keys", "create", "--config", str(config), *flags).stdout
    key = out.splitlines()[-1]
    assert key.startswith("sk-") and key.strip() == key
    return key


async def stored_rows(db: str | None, data: Path) -> list[UsageRecord]:
    store = Store(database.make_engine(database.database_url(db, data)))
    try:
        return await store.rows(0)
    finally:
        await store.close()


def test_cli_keys_and_usage(db: str | None, tmp_path: Path) -> None:
    config = write_config(tmp_path, database=db, extra='[prices."qwen-plus"]\ninput = 1\noutput = 2\n')
    key = create_key(config, "--name", "ci", "--workspace", "w1", "--rpm", "5", "--spend-limit", "2.5")
    listing = cli("keys", "list", "--json", "--config", str(config)).stdout
    listed = [json.loads(line) for line in listing.splitlines()]
    [row] = listed
    assert (row["name"], row["workspace"], row["rpm"], row["spend_limit"]) == ("ci", "w1", 5, "2.5")
    assert key not in json.dumps(listed) and row["prefix"] == key[:7]
    assert "API keys" in cli("keys", "list", "--config", str(config)).stdout
    server = start_server(config, log=tmp_path / "server.log")
    try:
        body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"authorization": f"Bearer {key}"}
        ok = httpx.post(server.base_url + CHAT, json=body, headers=auth, timeout=30)
        assert ok.status_code == 200
        other = httpx.post(
            server.base_url + CHAT,
            json=body,
            headers={"authorization": f"Bearer {key}", "x-dashscope-workspace": "w2"},
            timeout=30,
        )
        assert other.status_code == 403 and other.json()["error"]["code"] == "Workspace.AccessDenied"
    finally:
        server.stop()
    report = cli("usage", "--json", "--by", "key", "--config", str(config)).stdout
    usage = [json.loads(line) for line in report.splitlines()]
    assert [(u["model"], u["key"], u["calls"]) for u in usage] == [("qwen-plus", row["id"], 1)]
    assert float(usage[0]["cost"]) > 0
    assert "Usage per hour" in cli("usage", "--config", str(config)).stdout
    assert cli("keys", "revoke", row["id"], "--config", str(config)).returncode == 0
    assert cli("keys", "revoke", row["id"], "--config", str(config), check=False).returncode == 1
    assert cli("db", "current", "--config", str(config)).stdout.strip() == database.head_revision()


def test_limits_hold_across_two_processes(redis_url: str, db: str | None, tmp_path: Path) -> None:
    config = write_config(tmp_path, database=db)
    rpm_key = create_key(config, "--name", "rpm", "--rpm", "20", "--rps", "1000")
    burst_key = create_key(config, "--name", "burst", "--rpm", "300")  # 5 per second
    servers = [start_server(config, "--redis-url", redis_url, log=tmp_path / f"s{i}.log") for i in range(2)]
    try:

        async def fire(key: str, n: int, native: bool) -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as client:
                messages = [{"role": "user", "content": "hi"}]
                body = (
                    {"model": "qwen-plus", "input": {"messages": messages}}
                    if native
                    else {"model": "qwen-plus", "messages": messages}
                )
                return await asyncio.gather(
                    *(
                        client.post(
                            servers[i % 2].base_url + (NATIVE if native else CHAT),
                            json=body,
                            headers={"authorization": f"Bearer {key}"},
                        )
                        for i in range(n)
                    )
                )

        minute = asyncio.run(fire(rpm_key, 50, native=False))
        burst = asyncio.run(fire(burst_key, 12, native=True))
    finally:
        for server in servers:
            server.stop()
    codes = [r.status_code for r in minute]
    assert codes.count(200) == 20 and codes.count(429) == 30
    refused = [r for r in minute if r.status_code == 429]
    assert {r.json()["error"]["code"] for r in refused} == {"limit_requests"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    codes = [r.status_code for r in burst]
    assert codes.count(200) == 5 and codes.count(429) == 7
    assert {r.json()["code"] for r in burst if r.status_code == 429} == {"Throttling.BurstRate"}


def test_kill_9_loses_no_finished_request(db: str | None, tmp_path: Path) -> None:
    config = write_config(tmp_path, database=db)
    server = start_server(config, log=tmp_path / "server.log")
    finished: list[str] = []

    async def one(client: httpx.AsyncClient, i: int) -> None:
        body = {
            "model": "qwen3-8b",
            "messages": [{"role": "user", "content": f"q{i}"}],
            "stream": True,
        }
        headers = {"authorization": f"Bearer {ADMIN_KEY}", "x-dashscope-workspace": f"req-{i}"}
        try:
            async with client.stream("POST", server.base_url + CHAT, json=body, headers=headers) as response:
                async for line in response.aiter_lines():
                    if line == "data: [DONE]":
                        finished.append(f"req-{i}")
        except httpx.HTTPError:
            pass

    async def load() -> None:
        limit = asyncio.Semaphore(32)
        async with httpx.AsyncClient(timeout=30) as client:

            async def bounded(i: int) -> None:
                async with limit:
                    if server.process.poll() is None:
                        await one(client, i)
                if len(finished) >= 150 and server.process.poll() is None:
                    os.kill(server.process.pid, signal.SIGKILL)

            await asyncio.gather(*(bounded(i) for i in range(600)))

    try:
        asyncio.run(load())
        assert server.process.wait(10) == -signal.SIGKILL
    finally:
        server.stop()
    assert len(finished) >= 150
    assert list((tmp_path / "data" / "journal").glob("usage-*.jsonl")), "the dead server's journal"
    # A restart replays the dead server's journal into the store.
    restarted = start_server(config, log=tmp_path / "server.log")
    restarted.stop()
    rows = asyncio.run(stored_rows(db, tmp_path / "data"))
    ok = {row.workspace for row in rows if row.status == "ok"}
    assert set(finished) <= ok
    workspaces = [row.workspace for row in rows]
    assert len(workspaces) == len(set(workspaces))  # nothing stored twice
    assert not list((tmp_path / "data" / "journal").glob("*.jsonl"))


def test_cli_output_cut_short_by_head_ends_quietly(tmp_path: Path) -> None:
    """``thinkserve usage --json | head -c 10``: no BrokenPipeError traceback, SIGPIPE's status."""
    config = write_config(tmp_path)
    hours = 600  # one row each: far more than a pipe's 64 KiB buffer

    async def fill() -> None:
        store = await Store.open(database.database_url(None, tmp_path / "data"))
        try:
            records = [
                UsageRecord(
                    id=f"r{i}",
                    key_id="key_a",
                    workspace=None,
                    model="qwen-plus",
                    thinking=True,
                    status="ok",
                    input_tokens=10,
                    cached_tokens=0,
                    output_tokens=20,
                    reasoning_tokens=15,
                    ttft_ms=12.5,
                    duration_ms=100.0,
                    at=1_700_000_000.0 + i * 3600,
                )
                for i in range(hours)
            ]
            await store.write(records, {})
        finally:
            await store.close()

    asyncio.run(fill())
    command = [sys.executable, "-m", "thinkserve", "--log-level", "warning", "usage", "--json"]
    writer = subprocess.Popen(
        [*command, "--since", "0", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "THINKSERVE_API_KEYS": ""},
    )
    assert writer.stdout is not None and writer.stderr is not None
    head = subprocess.Popen(["head", "-c", "10"], stdin=writer.stdout, stdout=subprocess.PIPE)
    writer.stdout.close()  # head alone reads it now
    out, _ = head.communicate(timeout=120)
    err = writer.stderr.read().decode()
    status = writer.wait(timeout=120)
    assert out == b'{"hour":"2'
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert status == 141
    # Read to the end, the same command succeeds and prints every row.
    whole = subprocess.run(
        [*command, "--since", "0", "--config", str(config)], capture_output=True, timeout=120
    )
    assert whole.returncode == 0 and len(whole.stdout.splitlines()) == hours
    # A key field the store cannot hold is refused by the CLI too, without a traceback.
    refused = cli("keys", "create", "--name", "n" * 201, "--config", str(config), check=False)
    assert refused.returncode == 2 and "name must be at most 200 characters" in refused.stderr
    assert "Traceback" not in refused.stderr
