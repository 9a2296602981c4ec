"""SIGTERM drains with a deadline: a client that stops reading a stream cannot hold shutdown, and the
request cut at the deadline is recorded as cancelled with the tokens it got."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

from thinkserve.platform.database import database_url
from thinkserve.platform.store import Store

from .conftest import ADMIN_KEY, start_server

DRAIN_S = 2


def _config(folder: Path) -> Path:
    path = folder / "thinkserve.toml"
    path.write_text(
        "\n".join(
            [
                "[server]",
                f'data_dir = "{folder / "data"}"',
                f'api_keys = ["{ADMIN_KEY}"]',
                f"drain_timeout = {DRAIN_S}",
                "[engines.default]",
                'kind = "fake"',
                # A long, steady stream: 20,000 tokens at 200 a second.
                "delay = 0.005",
                f'answer = "{"word " * 4000}"',
            ]
        )
        + "\n"
    )
    return path


def _stalled_stream(port: int) -> socket.socket:
    """Open a stream, read its first bytes, then never read again."""
    body = json.dumps(
        {"model": "qwen-plus", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    # A small receive buffer: the server's writes block soon after the client stops reading.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        b"POST /compatible-mode/v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        + f"authorization: Bearer {ADMIN_KEY}\r\ncontent-type: application/json\r\n".encode()
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    first = sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200"), first[:200]
    return sock


async def _records(data: Path) -> list[tuple[str, int]]:
    store = await Store.open(database_url(None, data), migrate=False)
    try:
        return [(r.status, r.output_tokens) for r in await store.rows(0)]
    finally:
        await store.close()


def test_sigterm_drain_has_a_deadline(tmp_path: Path) -> None:
    server = start_server(_config(tmp_path), log=tmp_path / "server.log")
    port = int(server.base_url.rsplit(":", 1)[1])
    try:
        sock = _stalled_stream(port)
        time.sleep(1.0)  # let it generate (and fill the socket buffers)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # Before: shutdown waited for the stream, 100 s here (forever for a client that never reads).
        server.process.wait(timeout=DRAIN_S + 15)
        took = time.monotonic() - started
        sock.close()
    finally:
        server.stop()
    assert took < DRAIN_S + 10, took
    # The cut request's record is journaled when it is cancelled; if that came after the writer's
    # last flush at shutdown, it reaches SQL when the next start replays the journal, as here.
    start_server(_config(tmp_path), log=tmp_path / "server.log").stop()
    records = asyncio.run(_records(tmp_path / "data"))
    assert len(records) == 1, (records, (tmp_path / "server.log").read_text()[-3000:])
    status, output = records[0]
    assert status == "cancelled"
    assert 0 < output < 20_000


def test_drain_timeout_is_configurable(tmp_path: Path) -> None:
    import pytest

    from thinkserve.config import load_settings
    from thinkserve.core.errors import ConfigError

    assert load_settings(None, environ={}).drain_timeout_s == 30.0
    assert load_settings(_config(tmp_path), environ={}).drain_timeout_s == DRAIN_S
    assert load_settings(None, environ={"THINKSERVE_DRAIN_TIMEOUT": "5"}).drain_timeout_s == 5.0
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\ndrain_timeout = -1\n")
    with pytest.raises(ConfigError, match="drain_timeout"):
        load_settings(bad, environ={})
