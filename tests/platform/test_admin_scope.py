"""Admin rights reach only the admin key's workspace; usage is attributed only where the key has
rights; revoking names exactly one key (admin API, gate and CLI)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import serve, stop
from thinkserve.app import create_app
from thinkserve.config import Settings
from thinkserve.core.errors import WorkspaceDenied
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.platform import database, keys
from thinkserve.platform.administration import OutOfScope
from thinkserve.platform.keys import AmbiguousKey, ApiKey
from thinkserve.platform.metering import metered
from thinkserve.platform.store import Store
from thinkserve.platform.stored_keys import StoredKeys
from thinkserve.service.generation import Runtime
from thinkserve.thinking.chat_format import ChatFormat

from .conftest import ADMIN_KEY, cli, write_config
from .test_gate import events, settings

OPERATOR = {"authorization": f"Bearer {ADMIN_KEY}"}
CHAT = "/compatible-mode/v1/chat/completions"
BODY = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}


def _bearer(secret: str, workspace: str | None = None) -> dict[str, str]:
    headers = {"authorization": f"Bearer {secret}"}
    if workspace is not None:
        headers["x-dashscope-workspace"] = workspace
    return headers


def _made(http: httpx.Client, headers: dict[str, str], **body: object) -> dict[str, str]:
    made = http.post("/admin/v1/keys", json={"name": "k", **body}, headers=headers)
    assert made.status_code == 201, made.text
    return dict(made.json())


def _denied(response: httpx.Response) -> str:
    """A 403 in the admin API's error shape; returns the message."""
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert (body["error"]["type"], body["error"]["code"]) == ("AccessDenied", "AccessDenied")
    return str(body["error"]["message"])


def _active(http: httpx.Client) -> set[str]:
    listed = http.get("/admin/v1/keys", headers=OPERATOR).json()["data"]
    return {k["id"] for k in listed if k["revoked_at"] is None}


def test_an_admin_key_bound_to_a_workspace_reaches_only_that_workspace(
    db: str | None, tmp_path: Path
) -> None:
    engine = FakeEngine()
    config = Settings(api_keys=(ADMIN_KEY,), data_dir=tmp_path / "data", database_url=db)
    live, running = serve(
        create_app(config, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    )
    try:
        with httpx.Client(base_url=live.base_url, timeout=30) as http:
            w1_admin = _made(http, OPERATOR, workspace="w1", admin=True)
            w2_admin = _made(http, OPERATOR, workspace="w2", admin=True)
            global_admin = _made(http, OPERATOR, admin=True)
            k1 = _made(http, OPERATOR, workspace="w1")
            k2 = _made(http, OPERATOR, workspace="w2")
            loose = _made(http, OPERATOR)
            scoped = _bearer(w1_admin["key"])
            # Listing: W1's keys only, for its admin; every key for global admins.
            in_w1 = {k["id"] for k in http.get("/admin/v1/keys", headers=scoped).json()["data"]}
            assert in_w1 == {w1_admin["id"], k1["id"]}
            everyone = {w1_admin["id"], w2_admin["id"], global_admin["id"], k1["id"], k2["id"], loose["id"]}
            for glob in (OPERATOR, _bearer(global_admin["key"])):
                assert {k["id"] for k in http.get("/admin/v1/keys", headers=glob).json()["data"]} == everyone
            # Creating: in W1 only; another workspace or an unbound key is a 403.
            assert "'w2'" in _denied(
                http.post("/admin/v1/keys", json={"name": "x", "workspace": "w2"}, headers=scoped)
            )
            assert "unbound" in _denied(http.post("/admin/v1/keys", json={"name": "x"}, headers=scoped))
            _denied(http.post("/admin/v1/keys", json={"name": "x", "admin": True}, headers=scoped))
            made = _made(http, scoped, workspace="w1", admin=True)
            assert (made["workspace"], made["admin"]) == ("w1", True)
            assert _active(http) == everyone | {made["id"]}
            # Revoking: another workspace's key, by id or prefix, is no key at all; nothing changes.
            for other in (k2["id"], k2["prefix"], loose["id"], global_admin["id"], w2_admin["prefix"]):
                assert http.delete(f"/admin/v1/keys/{other}", headers=scoped).status_code == 404
            assert _active(http) == everyone | {made["id"]}
            # Usage: W1's keys only, even when another key names W1.
            for secret in (k1["key"], k2["key"], loose["key"]):
                ok = http.post(
                    CHAT, json=BODY, headers=_bearer(secret, None if secret == k2["key"] else "w1")
                )
                assert ok.status_code == 200, ok.text
            rows = http.get("/admin/v1/usage", params={"by": "key"}, headers=scoped).json()["data"]
            assert {(r["key"], r["calls"]) for r in rows} == {(k1["id"], 1)}
            assert http.get("/admin/v1/usage", params={"key": k2["id"]}, headers=scoped).json()["data"] == []
            all_rows = http.get("/admin/v1/usage", params={"by": "key"}, headers=OPERATOR).json()["data"]
            assert {r["key"] for r in all_rows} == {k1["id"], k2["id"], loose["id"]}
            # Within W1 it all works.
            revoked = http.delete(f"/admin/v1/keys/{k1['id']}", headers=scoped)
            assert (revoked.status_code, revoked.json()["id"]) == (200, k1["id"])
            assert http.post(CHAT, json=BODY, headers=_bearer(k1["key"])).status_code == 401
    finally:
        stop(running)


@pytest.mark.anyio
async def test_gate_administration_is_scoped(db: str | None, tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, db))
    try:
        mine, _ = keys.mint("mine", workspace="w1")
        theirs, _ = keys.mint("theirs", workspace="w2")
        await gate.create_key(mine, scope="w1")
        for outside in (theirs, keys.mint("loose")[0]):
            with pytest.raises(OutOfScope):
                await gate.create_key(outside, scope="w1")
        await gate.create_key(theirs)  # global (the CLI, operator keys)
        assert [k.id for k, _ in await gate.list_keys(scope="w1")] == [mine.id]
        assert [k.id for k, _ in await gate.list_keys(scope="w2")] == [theirs.id]
        assert {k.id for k, _ in await gate.list_keys()} == {mine.id, theirs.id}
        assert await gate.revoke(theirs.id, scope="w1") is None
        assert await gate.revoke(theirs.prefix, scope="w1") is None
        assert [k.revoked_at for k, _ in await gate.list_keys(scope="w2")] == [None]
        assert await gate.revoke(mine.prefix, scope="w1") == mine.id
    finally:
        await gate.aclose()


@pytest.mark.anyio
async def test_unbound_keys_cannot_charge_a_workspace_they_name(db: str | None, tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, db))
    try:
        loose, loose_secret = keys.mint("loose")
        bound, bound_secret = keys.mint("bound", workspace="w1")
        admin, admin_secret = keys.mint("admin", admin=True)
        for key in (loose, bound, admin):
            await gate.create_key(key)
        # Accepted (SDKs send the header), but not attributed to w1.
        p = await gate.authenticate(f"Bearer {loose_secret}", "w1")
        assert (p.workspace, p.bound, p.admin) == (None, None, False)
        with pytest.raises(WorkspaceDenied):
            await gate.authenticate(f"Bearer {bound_secret}", "w2")  # kept: a bound key, another workspace
        assert (await gate.authenticate(f"Bearer {bound_secret}", None)).bound == "w1"
        # Global admins (an unbound admin key, an operator key) may label their usage.
        assert (await gate.authenticate(f"Bearer {admin_secret}", "w9")).workspace == "w9"
        for secret in (loose_secret, bound_secret, admin_secret, ADMIN_KEY):
            principal = await gate.authenticate(f"Bearer {secret}", None if secret == bound_secret else "w1")
            admission = await gate.admit(principal, "m", 10)
            async for _ in metered(gate, admission, True, events(2)):
                pass
        await gate.flush()
        recorded = {r.key_id: r.workspace for r in await gate.store.rows(0)}
        assert recorded == {loose.id: None, bound.id: "w1", admin.id: "w1", "bootstrap-0": "w1"}
        rows = await gate.usage(0, None, model=None, key_id=None, by=["key"], scope="w1")
        assert [r.group["key"] for r in rows] == [bound.id]
    finally:
        await gate.aclose()


def _twins(workspace: str | None = None, other: str | None = None) -> tuple[ApiKey, ApiKey]:
    """Two active keys whose shown prefixes are the same."""
    a = dataclasses.replace(keys.mint("a", workspace=workspace)[0], prefix="sk-dup0")
    b = dataclasses.replace(keys.mint("b", workspace=other)[0], prefix="sk-dup0")
    return a, b


@pytest.mark.anyio
async def test_a_prefix_shared_by_several_keys_revokes_none(db: str | None, tmp_path: Path) -> None:
    gate = await StoredKeys.start(settings(tmp_path, db))
    try:
        a, b = _twins()
        await gate.create_key(a)
        await gate.create_key(b)
        with pytest.raises(AmbiguousKey) as ambiguous:
            await gate.revoke("sk-dup0")
        assert sorted(ambiguous.value.candidates) == sorted([a.id, b.id])
        assert a.id in str(ambiguous.value) and b.id in str(ambiguous.value)
        assert [k.revoked_at for k, _ in await gate.list_keys()] == [None, None]
        assert await gate.revoke(a.id) == a.id
        assert await gate.revoke("sk-dup0") == b.id  # now only one active key has it
        # Within a workspace, a prefix shared with another workspace's key names one key.
        c, d = _twins("w1", "w2")
        await gate.create_key(c)
        await gate.create_key(d)
        assert await gate.revoke("sk-dup0", scope="w1") == c.id
        assert [k.revoked_at for k, _ in await gate.list_keys(scope="w2")] == [None]
    finally:
        await gate.aclose()


def test_admin_api_and_cli_refuse_an_ambiguous_prefix(db: str | None, tmp_path: Path) -> None:
    config_file = write_config(tmp_path, database=db)
    a, b = _twins()

    async def add() -> None:
        store = await Store.open(database.database_url(db, tmp_path / "data"))
        try:
            await store.add_key(a)
            await store.add_key(b)
        finally:
            await store.close()

    asyncio.run(add())
    refused = cli("keys", "revoke", "sk-dup0", "--config", str(config_file), check=False)
    assert refused.returncode == 2, refused.stderr
    assert a.id in refused.stderr and b.id in refused.stderr
    listing = cli("keys", "list", "--json", "--config", str(config_file)).stdout
    assert len([json.loads(line) for line in listing.splitlines()]) == 2  # both still active
    engine = FakeEngine()
    config = Settings(api_keys=(ADMIN_KEY,), data_dir=tmp_path / "data", database_url=db)
    live, running = serve(
        create_app(config, runtimes={"default": Runtime(engine, ChatFormat(engine.tokenizer))})
    )
    try:
        with httpx.Client(base_url=live.base_url, timeout=30) as http:
            response = http.delete("/admin/v1/keys/sk-dup0", headers=OPERATOR)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("invalid_parameter_error", "key_id")
            assert a.id in error["message"] and b.id in error["message"]
            assert _active(http) == {a.id, b.id}
    finally:
        stop(running)
    done = cli("keys", "revoke", a.id, "--config", str(config_file))
    assert a.id in done.stdout
    done = cli("keys", "revoke", "sk-dup0", "--config", str(config_file))  # one active key left
    assert b.id in done.stdout
