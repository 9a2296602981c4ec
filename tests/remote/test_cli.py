"""``thinkserve serve --upstream URL --tokenizer PATH``: the real CLI, with the platform (keys,
metering in SQLite), in front of a loopback engine server running the real engine."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import TINY_MODEL
from tests.platform.conftest import ADMIN_KEY, start_server, write_config
from tests.remote.upstreams import upstreams

pytestmark = pytest.mark.slow


def test_serve_with_upstream_flags(tmp_path: Path) -> None:
    with upstreams([]) as (engine_server,):
        config = write_config(tmp_path)  # a fake default engine, which the flags replace
        flags = ["--upstream", engine_server.url, "--tokenizer", str(TINY_MODEL)]
        server = start_server(config, *flags, log=tmp_path / "server.log")
        try:
            health = httpx.get(f"{server.base_url}/health").json()["engines"]["default"]
            assert health["state"] == "up" and health["reason"].startswith("remote, 1/1 upstreams up")
            client = openai.OpenAI(
                api_key=ADMIN_KEY, base_url=f"{server.base_url}/compatible-mode/v1", max_retries=0
            )
            stream = client.chat.completions.create(
                model="qwen3-8b",
                messages=[
                    {"role": "user", "content": "Explain step by step how to compute 1234 times 5678."}
                ],
                stream=True,
                stream_options={"include_usage": True},
                temperature=0,
                extra_body={"thinking_budget": 20},
            )
            chunks = list(stream)
            usage = chunks[-1].usage
            assert usage is not None and usage.completion_tokens_details is not None
            assert usage.completion_tokens_details.reasoning_tokens == 20
            assert engine_server.stats()["completions"] == 2  # to the budget, then the rest
            # Metered like any engine's: the usage record holds the upstream's tokens.
            rows = httpx.get(
                f"{server.base_url}/admin/v1/usage",
                params={"by": "mode"},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ).json()["data"]
            assert [(r["mode"], r["calls"], r["reasoning_tokens"]) for r in rows] == [("thinking", 1, 20)]
        finally:
            server.stop()
