"""Documents of the folder index: title = first heading, else the file name; text without markup."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkserve.search.documents import read_document, supported


def _doc(tmp_path: Path, name: str, text: str) -> tuple[str, str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    d = read_document(path)
    return d.title, d.text


def test_markdown_title_is_the_first_heading(tmp_path: Path) -> None:
    title, text = _doc(tmp_path, "a.md", "---\ntitle: meta\n---\nintro\n\n## Keys and limits ##\n\nbody")
    assert title == "Keys and limits"
    assert "intro" in text and "body" in text and "title: meta" not in text


def test_markdown_setext_heading(tmp_path: Path) -> None:
    assert _doc(tmp_path, "b.markdown", "Setup guide\n===========\n\nrun it")[0] == "Setup guide"


def test_markdown_without_heading_is_named_by_file(tmp_path: Path) -> None:
    assert _doc(tmp_path, "plain.md", "just text, no heading")[0] == "plain.md"


def test_html_heading_wins_over_title_and_scripts_are_dropped(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Site | Page</title><style>p{color:red}</style></head>"
        "<body><script>var secret = 1;</script><h1>Billing &amp; quotas</h1><p>Per call.</p></body></html>"
    )
    title, text = _doc(tmp_path, "c.html", html)
    assert title == "Billing & quotas"
    assert "Per call." in text and "secret" not in text and "color" not in text


def test_html_without_heading_uses_its_title(tmp_path: Path) -> None:
    assert _doc(tmp_path, "d.htm", "<title> FAQ </title><p>x</p>")[0] == "FAQ"


def test_text_file_is_named_by_file(tmp_path: Path) -> None:
    assert _doc(tmp_path, "notes.txt", "# not a heading in text\nzebra") == (
        "notes.txt",
        "# not a heading in text\nzebra",
    )


@pytest.mark.parametrize(
    ("name", "ok"), [("a.md", True), ("b.HTML", True), ("c.txt", True), ("d.pdf", False), ("e.py", False)]
)
def test_supported_suffixes(name: str, ok: bool) -> None:
    assert supported(Path(name)) is ok
