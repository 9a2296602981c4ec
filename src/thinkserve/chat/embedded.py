"""A thinkserve server inside the chat's own process, for ``thinkserve chat`` with nothing to talk to
(imports app, config).

The app is the one ``serve`` runs (engines, keys, metering into the data folder), served by uvicorn
on a loopback port chosen by the system, in a background thread. A key made for this run only
authenticates the chat: it is a bootstrap key, never stored, and the port is closed on exit.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from thinkserve.config import Settings, load_settings

START_TIMEOUT_S = 1800.0
"""Assembling the default model and loading it can take minutes on a slow disk; never forever."""


class EmbeddedError(RuntimeError):
    """The embedded server did not start (its log says why)."""


@dataclass
class Embedded:
    """A running embedded server."""

    root: str
    """``http://127.0.0.1:PORT``."""
    api_key: str
    settings: Settings
    _server: uvicorn.Server
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving; the lifespan closes the engines (and their processes)."""
        self._server.should_exit = True
        self._thread.join(timeout=60)


def start(config: Path | None, model_file: str | None) -> Embedded:
    """Start the app with ``config`` (or the defaults), serving ``model_file`` for every name when
    given (or the default model), and wait until it answers; raises ``EmbeddedError``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        settings = load_settings(config, host="127.0.0.1", port=port, model=model_file)
        key = "sk-chat-" + secrets.token_hex(24)
        settings = replace(settings, api_keys=(*settings.api_keys, key))
        # Imported here: the app pulls in every layer, which a chat against a remote server never needs.
        from thinkserve.app import create_app

        app = create_app(settings)
        server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=5
            )
        )
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="thinkserve-embedded", daemon=True
        )
        thread.start()
    except BaseException:
        sock.close()
        raise
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise EmbeddedError("the embedded server did not start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise EmbeddedError(f"the embedded server did not start within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    return Embedded(f"http://127.0.0.1:{port}", key, settings, server, thread)
