"""The embedded provider: FTS5 + BM25 over a folder, re-indexed when files change."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from thinkserve.search.folder_index import FolderIndex, fts_query
from thinkserve.search.folder_watch import FolderWatch


def _folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    keys = "# Rotating keys\n\nThe flamingo procedure rotates keys weekly.\n"
    (docs / "guide" / "keys.md").write_text(keys)
    (docs / "faq.html").write_text("<h2>Billing</h2><p>Searches are billed per call. 杭州天气晴朗。</p>")
    (docs / "notes.txt").write_text("A note that mentions flamingo once, among zebras and zebras.\n")
    (docs / "skip.pdf").write_bytes(b"%PDF flamingo")
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "secret.md").write_text("# flamingo secret\n")
    return docs


def test_indexes_supported_files_and_ranks_by_bm25(tmp_path: Path) -> None:
    index = FolderIndex(_folder(tmp_path))
    assert index.sync() == 3
    assert index.documents == 3
    hits = index.search_now("flamingo procedure", 5)
    # Both words, one in a heading-named document: keys.md first; the note mentions one word.
    assert [h.title for h in hits] == ["Rotating keys", "notes.txt"]
    assert hits[0].url == (tmp_path / "docs" / "guide" / "keys.md").resolve().as_uri()
    assert hits[0].site_name == "docs"
    assert "flamingo procedure" in hits[0].snippet


def test_cjk_text_is_found_by_its_characters(tmp_path: Path) -> None:
    index = FolderIndex(_folder(tmp_path))
    index.sync()
    hits = index.search_now("杭州天气怎么样", 5)
    assert [h.title for h in hits] == ["Billing"]
    assert "杭州天气晴朗" in hits[0].snippet


def test_base_url_names_results(tmp_path: Path) -> None:
    index = FolderIndex(_folder(tmp_path), "https://docs.example.lan/kb/")
    index.sync()
    (hit,) = index.search_now("rotating", 5)
    assert hit.url == "https://docs.example.lan/kb/guide/keys.md"
    assert hit.site_name == "docs.example.lan"


def test_stop_words_alone_find_nothing(tmp_path: Path) -> None:
    index = FolderIndex(_folder(tmp_path))
    index.sync()
    assert fts_query("what is the") is None
    assert index.search_now("what is the", 5) == []
    assert index.search_now('"); DROP TABLE docs; --', 5) == []
    assert index.documents == 3


def test_sync_follows_changes(tmp_path: Path) -> None:
    docs = _folder(tmp_path)
    index = FolderIndex(docs)
    index.sync()
    assert index.sync() == 0  # nothing changed: nothing re-read
    notes = docs / "notes.txt"
    notes.write_text("Now about pelicans only.\n")
    os.utime(notes, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    (docs / "guide" / "keys.md").unlink()
    (docs / "new.md").write_text("# Pelican care\n\npelicans need fish\n")
    assert index.sync() == 3
    assert [h.title for h in index.search_now("flamingo", 5)] == []
    assert {h.title for h in index.search_now("pelicans", 5)} == {"notes.txt", "Pelican care"}


def test_watch_reindexes_a_changed_folder(tmp_path: Path) -> None:
    docs = _folder(tmp_path)

    async def scenario() -> list[str]:
        index = FolderIndex(docs)
        watch = FolderWatch(index)
        await watch.start()
        try:
            assert await index.search("ibis", 5) == []
            (docs / "guide" / "birds.md").write_text("# Ibis\n\nThe sacred ibis wades.\n")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                hits = await index.search("ibis", 5)
                if hits:
                    return [h.title for h in hits]
                await asyncio.sleep(0.1)
            return []
        finally:
            await watch.aclose()
            await index.aclose()

    assert asyncio.run(scenario()) == ["Ibis"]
