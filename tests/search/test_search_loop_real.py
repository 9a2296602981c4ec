"""The model calls the built-in ``search`` tool itself, on the real engine (the tiny Qwen3 model,
trained to call ``{"name": "search", "arguments": {"query": ...}}`` when the tool is offered and it
is asked a factual question, then to answer from the results): ``enable_search`` without
``forced_search`` runs the loop, in both dialects, through the official SDKs. What is asserted is
that the loop ran (a search counted, its sources returned, no call shown to the client), not what
the tiny model answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import pytest
from dashscope import Generation as _Generation
from openai import OpenAI

from tests.engine.conftest import engine_model
from tests.platform.conftest import ADMIN_KEY, ServerProcess, start_server

pytestmark = pytest.mark.slow
Generation: Any = _Generation
SOURCES = {"enable_source": True, "enable_citation": True}
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
OCEAN = [{"role": "user", "content": "Tell me about the ocean."}]


def _docs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "france.md").write_text(
        "# France\n\nParis is the capital of France and its largest city.\n", encoding="utf-8"
    )
    (folder / "ocean.md").write_text(
        "# The ocean\n\nThe ocean covers about 71 percent of the Earth's surface.\n", encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("search-loop-real")
    docs = _docs(folder / "docs")
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
        yield server
    finally:
        server.stop()


def _client(server: ServerProcess) -> OpenAI:
    return OpenAI(api_key=ADMIN_KEY, base_url=server.base_url + "/compatible-mode/v1", max_retries=0)


def _numbered(info: dict[str, Any]) -> None:
    results = info["search_results"]
    assert [r["index"] for r in results] == list(range(1, len(results) + 1))


@pytest.mark.parametrize("question", [FRANCE, OCEAN], ids=["france", "ocean"])
def test_openai_sdk_the_model_searches(served: ServerProcess, question: list[dict[str, str]]) -> None:
    completion = _client(served).chat.completions.create(
        model="qwen-plus",
        messages=question,  # type: ignore[arg-type]
        max_tokens=300,
        extra_body={"enable_search": True, "search_options": SOURCES},
    )
    assert completion.choices[0].message.tool_calls is None
    assert completion.usage is not None
    assert (completion.usage.model_extra or {})["plugins"]["search"]["count"] >= 1
    _numbered((completion.model_extra or {})["search_info"])


def test_openai_sdk_the_model_searches_while_thinking_streamed(served: ServerProcess) -> None:
    chunks = list(
        _client(served).chat.completions.create(
            model="qwen-plus",
            messages=OCEAN,  # type: ignore[arg-type]
            max_tokens=400,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"enable_thinking": True, "enable_search": True, "search_options": SOURCES},
        )
    )
    assert all(c.choices[0].delta.tool_calls is None for c in chunks if c.choices)
    infos = [(c.model_extra or {})["search_info"] for c in chunks if "search_info" in (c.model_extra or {})]
    assert infos
    _numbered(infos[-1])
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.model_extra or {})["plugins"]["search"]["count"] >= 1


def test_dashscope_sdk_the_model_searches(served: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", served.base_url + "/api/v1/")
    response = Generation.call(
        api_key=ADMIN_KEY,
        model="qwen-plus",
        messages=FRANCE,
        result_format="message",
        max_tokens=300,
        enable_search=True,
        search_options=SOURCES,
    )
    assert response.status_code == 200, response
    assert "tool_calls" not in response.output.choices[0].message
    assert response.usage.plugins["search"]["count"] >= 1
    _numbered(response.output.search_info)
