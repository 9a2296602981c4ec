"""The embedded search provider: a SQLite FTS5 index, ranked by BM25, over a folder of documents
(imports search).

The index lives in memory and is built at start (``sync``); ``folder_watch`` calls ``sync`` again
when files change, and ``sync`` re-reads only files whose size or modification time changed. Each
hit's ``url`` is the file as a ``file://`` URL, or under ``base_url`` when one is configured::

    /srv/docs/guide/setup.md, base_url None                  -> file:///srv/docs/guide/setup.md
    /srv/docs/guide/setup.md, base_url "https://docs.lan/"   -> https://docs.lan/guide/setup.md

A query becomes an FTS5 ``OR`` of its words (stop words dropped) and of adjacent pairs of CJK
characters, which the index stores one per token (``unicode61`` would make a whole run of Han
characters a single token)::

    "How do I set up the server?"  -> "set" OR "up" OR "server"
    "杭州天气"                      -> "杭 州" OR "州 天" OR "天 气"
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

from thinkserve.search.documents import Document, read_document, supported
from thinkserve.search.provider import Hit

log = logging.getLogger(__name__)

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_CHAR = re.compile(f"([{_CJK}])")
_GAP = "\u2005"
"""Put around each CJK character in the index: a separator to FTS5 (Unicode class Zs) that no
document text is likely to hold, so that snippets lose exactly what the index added."""
_WORD = re.compile(r"\w+")
_CJK_RUN = re.compile(f"[{_CJK}]+")
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it me my of on or please tell that the "
    "this to was what when where which who why will with you your".split()
)
MAX_TERMS = 32
BATCH = 256
"""Files written to the index per transaction."""
SNIPPET_TOKENS = 48

_SCHEMA = """
CREATE VIRTUAL TABLE docs USING fts5(path UNINDEXED, title, body, tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE files (path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
                    doc INTEGER NOT NULL);
"""


def _spaced(text: str) -> str:
    """CJK characters one token each."""
    return _CJK_CHAR.sub(f"{_GAP}\\1{_GAP}", text)


def _unspaced(text: str) -> str:
    return text.replace(_GAP, "")


def _read(path: Path) -> Document | None:
    try:
        return read_document(path)
    except (OSError, ValueError) as exc:
        log.warning("search index: skipping %s: %s", path, exc)
        return None


def fts_query(text: str) -> str | None:
    """The FTS5 query of a question; None when it has no searchable word."""
    terms: list[str] = []
    for run in _CJK_RUN.findall(text):
        terms += [f'"{run[i]} {run[i + 1]}"' for i in range(len(run) - 1)] or [f'"{run}"']
    for word in _WORD.findall(_CJK_RUN.sub(" ", text).lower()):
        if word not in STOP_WORDS and (len(word) > 1 or word.isdigit()):
            terms.append(f'"{word}"')
    unique = list(dict.fromkeys(terms))[:MAX_TERMS]
    return " OR ".join(unique) if unique else None


class FolderIndex:
    """An FTS5 index of the supported files under ``root``."""

    def __init__(self, root: Path, base_url: str | None = None) -> None:
        self.root = root.resolve()
        self._base_url = base_url
        # site_name of every hit: the host of the base URL, else the folder's name.
        self._site = (urlsplit(base_url).hostname or "") if base_url else self.root.name
        # One connection shared by worker threads, serialised by the lock.
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"docs:{self.root}"

    @property
    def documents(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM files").fetchone()[0])

    def url_of(self, path: Path) -> str:
        if self._base_url is None:
            return path.as_uri()
        relative = path.relative_to(self.root).as_posix()
        return self._base_url.rstrip("/") + "/" + quote(relative)

    def sync(self) -> int:
        """Bring the index in line with the folder; returns how many files were added, changed or
        removed. Unreadable files are logged and left out."""
        seen: dict[str, os.stat_result] = {}
        for path in self._files():
            try:
                seen[str(path)] = path.stat()
            except OSError:
                continue
        with self._lock:
            known = {p: (m, s, d) for p, m, s, d in self._db.execute("SELECT * FROM files")}
        gone = [(key, doc) for key, (_, _, doc) in known.items() if key not in seen]
        if gone:
            with self._lock, self._db:
                self._db.executemany("DELETE FROM docs WHERE rowid = ?", [(doc,) for _, doc in gone])
                self._db.executemany("DELETE FROM files WHERE path = ?", [(key,) for key, _ in gone])
        todo = [
            (Path(key), st, None if old is None else old[2])
            for key, st in seen.items()
            if (old := known.get(key)) is None or old[:2] != (st.st_mtime_ns, st.st_size)
        ]
        # Files are read outside the lock, then written a batch per transaction: FTS5 merges its
        # segments at each commit, which a commit per file made half of the indexing time.
        for start in range(0, len(todo), BATCH):
            self._index([(path, st, old, _read(path)) for path, st, old in todo[start : start + BATCH]])
        changed = len(gone) + len(todo)
        if changed:
            log.info("search index of %s: %d file(s) updated, %d in all", self.root, changed, len(seen))
        return changed

    def _files(self) -> list[Path]:
        out: list[Path] = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [Path(folder, n) for n in sorted(names) if not n.startswith(".") and supported(Path(n))]
        return out

    def _index(self, batch: list[tuple[Path, os.stat_result, int | None, Document | None]]) -> None:
        with self._lock, self._db:
            for path, st, old_doc, document in batch:
                if old_doc is not None:
                    self._db.execute("DELETE FROM docs WHERE rowid = ?", (old_doc,))
                    self._db.execute("DELETE FROM files WHERE path = ?", (str(path),))
                if document is None:
                    continue
                cursor = self._db.execute(
                    "INSERT INTO docs (path, title, body) VALUES (?, ?, ?)",
                    (str(path), _spaced(document.title), _spaced(document.text)),
                )
                row = (str(path), st.st_mtime_ns, st.st_size, cursor.lastrowid)
                self._db.execute("INSERT INTO files VALUES (?, ?, ?, ?)", row)

    def search_now(self, query: str, limit: int) -> list[Hit]:
        """``search``, on the calling thread."""
        fts = fts_query(query)
        if fts is None or limit < 1:
            return []
        sql = (
            "SELECT path, title, snippet(docs, 2, '', '', '…', ?) FROM docs WHERE docs MATCH ? "
            "ORDER BY bm25(docs, 0.0, 4.0, 1.0) LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (SNIPPET_TOKENS, fts, limit)).fetchall()
        return [
            Hit(
                title=_unspaced(title).strip(),
                url=self.url_of(Path(path)),
                snippet=_unspaced(snippet).strip(),
                site_name=self._site,
            )
            for path, title, snippet in rows
        ]

    async def search(self, query: str, limit: int) -> list[Hit]:
        return await asyncio.to_thread(self.search_now, query, limit)

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()
