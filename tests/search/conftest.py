"""Fixtures of the search tests: a folder of documents and servers that search it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import API_KEY, LiveServer, app_with, serve, stop
from thinkserve.config import Settings
from thinkserve.engine.fake.engine import FakeEngine
from thinkserve.search.settings import SearchSettings

CITED_ANSWER = "The flamingo procedure rotates keys [1], weekly [ref_1]; see also [9]."


def write_docs(folder: Path) -> Path:
    (folder / "ops").mkdir(parents=True, exist_ok=True)
    (folder / "ops" / "keys.md").write_text(
        "# Rotating keys\n\nThe flamingo procedure rotates every API key weekly.\n", encoding="utf-8"
    )
    (folder / "billing.html").write_text(
        "<html><head><title>Billing</title></head><body><h1>Search billing</h1>"
        "<p>Each flamingo search call is billed once.</p></body></html>",
        encoding="utf-8",
    )
    (folder / "zebra.txt").write_text("Zebras have stripes.\n", encoding="utf-8")
    return folder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_docs(tmp_path / "docs")


@dataclass
class SearchServer:
    live: LiveServer
    engine: FakeEngine
    docs: Path

    def prompt_text(self) -> str:
        """The last prompt the engine got, as text."""
        return self.engine.tokenizer.decode(self.engine.stats.prompts[-1])


@pytest.fixture
def search_server(docs: Path) -> Iterator[SearchServer]:
    engine = FakeEngine(answer=CITED_ANSWER)
    settings = Settings(api_keys=(API_KEY,), search=SearchSettings(docs=docs))
    live, running = serve(app_with(engine, settings=settings))
    try:
        yield SearchServer(live, engine, docs)
    finally:
        stop(running)
