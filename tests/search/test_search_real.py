"""``thinkserve serve --search-docs DIR`` on the real engine (the tiny Qwen3 model): forced search
returns ``search_info`` with sources from DIR and ``usage.plugins.search.count >= 1`` in both
dialects, through the official SDKs; a file added to DIR is found without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import pytest
from dashscope import Generation as _Generation
from openai import OpenAI

from tests.engine.conftest import engine_model
from tests.platform.conftest import ADMIN_KEY, ServerProcess, start_server
from tests.search.conftest import write_docs

pytestmark = pytest.mark.slow
Generation: Any = _Generation
FORCED = {"forced_search": True, "enable_source": True}
QUESTION = [{"role": "user", "content": "What does the flamingo procedure do?"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    folder = tmp_path_factory.mktemp("search-real")
    docs = write_docs(folder / "docs")
    config = folder / "thinkserve.toml"
    config.write_text(
        "[server]\n"
        f'data_dir = "{folder / "data"}"\n'
        f'api_keys = ["{ADMIN_KEY}"]\n'
        "[engines.default]\n"
        f'model = "{engine_model()}"\n'
        "n_ctx = 4096\n"
        "n_seq = 2\n"
        "own_process = false\n"
    )
    server = start_server(config, "--search-docs", str(docs), log=folder / "server.log")
    try:
        yield server, docs
    finally:
        server.stop()


def _client(server: ServerProcess) -> OpenAI:
    return OpenAI(api_key=ADMIN_KEY, base_url=server.base_url + "/compatible-mode/v1", max_retries=0)


def _from_docs(results: list[dict[str, Any]], docs: Path) -> None:
    assert results, "no search results"
    assert [r["index"] for r in results] == list(range(1, len(results) + 1))
    assert results[0]["url"] == (docs / "ops" / "keys.md").resolve().as_uri()
    assert results[0]["title"] == "Rotating keys"
    assert all(r["url"].startswith(docs.resolve().as_uri()) for r in results)


def test_openai_sdk_forced_search(served: tuple[ServerProcess, Path]) -> None:
    server, docs = served
    client = _client(server)
    plain = client.chat.completions.create(model="qwen-plus", messages=QUESTION, max_tokens=24)
    completion = client.chat.completions.create(
        model="qwen-plus",
        messages=QUESTION,
        max_tokens=24,
        extra_body={"enable_search": True, "search_options": FORCED},
    )
    _from_docs((completion.model_extra or {})["search_info"]["search_results"], docs)
    assert completion.usage is not None and plain.usage is not None
    assert (completion.usage.model_extra or {})["plugins"]["search"]["count"] >= 1
    # Model Studio's own test of a search: the prompt grew by the results.
    assert completion.usage.prompt_tokens > plain.usage.prompt_tokens + 20


def test_openai_sdk_forced_search_streamed_with_thinking(served: tuple[ServerProcess, Path]) -> None:
    server, docs = served
    chunks = list(
        _client(server).chat.completions.create(
            model="qwen-plus",
            messages=QUESTION,
            max_tokens=48,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"enable_thinking": True, "enable_search": True, "search_options": FORCED},
        )
    )
    infos = [(c.model_extra or {})["search_info"] for c in chunks if (c.model_extra or {}).get("search_info")]
    assert len(infos) == 1
    _from_docs(infos[0]["search_results"], docs)
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.model_extra or {})["plugins"]["search"]["count"] >= 1


def test_dashscope_sdk_forced_search(
    served: tuple[ServerProcess, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, docs = served
    monkeypatch.setattr(dashscope, "base_http_api_url", server.base_url + "/api/v1/")
    response = Generation.call(
        api_key=ADMIN_KEY,
        model="qwen-plus",
        messages=QUESTION,
        result_format="message",
        max_tokens=24,
        enable_search=True,
        search_options=FORCED,
    )
    assert response.status_code == 200, response
    _from_docs(response.output.search_info["search_results"], docs)
    assert response.usage.plugins["search"]["count"] >= 1
    chunks = list(
        Generation.call(
            api_key=ADMIN_KEY,
            model="qwen-plus",
            messages=QUESTION,
            result_format="message",
            max_tokens=24,
            enable_thinking=True,
            enable_search=True,
            search_options={**FORCED, "prepend_search_result": True},
            stream=True,
            incremental_output=True,
        )
    )
    assert chunks[0].output.choices[0].message.content == ""
    _from_docs(chunks[0].output.search_info["search_results"], docs)
    assert chunks[-1].usage.plugins["search"]["count"] >= 1


def test_a_new_file_is_found_without_restart(served: tuple[ServerProcess, Path]) -> None:
    server, docs = served
    (docs / "new.md").write_text("# Okapi habits\n\nThe okapi eats leaves at dawn.\n", encoding="utf-8")
    client = _client(server)
    deadline = time.monotonic() + 30
    titles: list[str] = []
    while time.monotonic() < deadline:
        completion = client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "okapi"}],
            max_tokens=4,
            extra_body={"enable_search": True, "search_options": FORCED},
        )
        titles = [r["title"] for r in (completion.model_extra or {})["search_info"]["search_results"]]
        if titles:
            break
        time.sleep(0.2)
    assert titles == ["Okapi habits"]
