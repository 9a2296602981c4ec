"""What the embedded search provider costs: indexing a folder at start, re-indexing one changed
file, and one query (best of several), on generated Markdown documents.

    .venv/bin/python -m bench.search_index [documents] [words per document]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from thinkserve.search.folder_index import FolderIndex

WORDS = [f"w{i}" for i in range(5000)]


def _write(folder: Path, n: int, words: int, rng: random.Random) -> int:
    total = 0
    for i in range(n):
        body = " ".join(rng.choice(WORDS) for _ in range(words))
        text = f"# Document {i}\n\n{body}\n"
        (folder / f"d{i:05}.md").write_text(text)
        total += len(text)
    return total


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 2000
    words = int(argv[2]) if len(argv) > 2 else 300
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        size = _write(folder, n, words, rng)
        index = FolderIndex(folder)
        start = time.perf_counter()
        index.sync()
        indexed = time.perf_counter() - start
        start = time.perf_counter()
        index.sync()
        unchanged = time.perf_counter() - start
        (folder / "d00000.md").write_text("# Changed\n\nnew words here\n")
        start = time.perf_counter()
        index.sync()
        one = time.perf_counter() - start
        queries = [" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(50)]
        times = []
        for q in queries:
            start = time.perf_counter()
            index.search_now(q, 10)
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"{n} documents, {size / 1e6:.1f} MB of Markdown")
        print(f"index at start: {indexed:.2f} s; re-scan, nothing changed: {unchanged * 1000:.1f} ms")
        print(f"re-index after one file changed: {one * 1000:.1f} ms")
        print(f"query (6 words, top 10): p50 {times[25] * 1000:.2f} ms, p95 {times[47] * 1000:.2f} ms")


if __name__ == "__main__":
    main(sys.argv)
