"""The key ``thinkserve serve`` makes on a first run is a normal key; admin stays explicit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from thinkserve.cli import _ensure_key
from thinkserve.config import load_settings
from thinkserve.core.errors import InvalidApiKey
from thinkserve.platform.settings import PlatformSettings
from thinkserve.platform.stored_keys import StoredKeys

from .conftest import ADMIN_KEY, start_server


def test_the_first_key_is_not_an_admin_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = replace(load_settings(None, environ={}), data_dir=tmp_path)
    made = _ensure_key(settings)
    [key] = made.api_keys
    assert made.first_key == key
    assert made.platform.bootstrap_keys == ()
    assert made.platform.first_key == key
    err = capsys.readouterr().err
    assert "normal key, without admin rights" in err and "keys create --name ops --admin" in err
    # Configured keys stay admin keys, and no key is made then.
    configured = replace(settings, api_keys=(ADMIN_KEY,))
    assert _ensure_key(configured).platform.bootstrap_keys == (ADMIN_KEY,)
    assert _ensure_key(configured).platform.first_key is None


@pytest.mark.anyio
async def test_the_first_key_is_stored_once_and_stays_revoked(db: str | None, tmp_path: Path) -> None:
    secret = "sk-" + "ab" * 24
    settings = PlatformSettings(data_dir=tmp_path / "data", database_url=db, first_key=secret)
    gate = await StoredKeys.start(settings)
    try:
        principal = await gate.authenticate(f"Bearer {secret}", None)
        assert not principal.admin and principal.key_id.startswith("key_")
        assert [(k.name, k.admin, k.prefix) for k, _ in await gate.list_keys()] == [
            ("first", False, secret[:7])
        ]
    finally:
        await gate.aclose()
    gate = await StoredKeys.start(settings)  # a restart does not add it again
    try:
        [(key, _)] = await gate.list_keys()
        assert await gate.revoke(key.id)
    finally:
        await gate.aclose()
    gate = await StoredKeys.start(settings)  # nor bring it back once revoked
    try:
        with pytest.raises(InvalidApiKey):
            await gate.authenticate(f"Bearer {secret}", None)
        assert len(await gate.list_keys()) == 1
    finally:
        await gate.aclose()


def test_serve_prints_a_normal_key(tmp_path: Path) -> None:
    config = tmp_path / "thinkserve.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[engines.default]\nkind = "fake"\n')
    server = start_server(config, log=tmp_path / "serve.log")
    try:
        key = (tmp_path / "data" / "api-key").read_text().strip()
        assert f"export DASHSCOPE_API_KEY={key}" in (tmp_path / "serve.log").read_text()
        headers = {"authorization": f"Bearer {key}"}
        body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
        chat = httpx.post(
            server.base_url + "/compatible-mode/v1/chat/completions", json=body, headers=headers
        )
        assert chat.status_code == 200, chat.text
        admin = httpx.get(server.base_url + "/admin/v1/keys", headers=headers)
        assert admin.status_code == 403, admin.text
    finally:
        server.stop()
