"""Documents of the embedded search index: text, Markdown and HTML files as a title and plain text
(imports nothing from thinkserve).

The title is the document's first heading, else the file name::

    guide.md   "# Setting up\\n\\nRun make..."             -> Document("Setting up", "Setting up\\n\\nRun...")
    faq.html   "<title>FAQ</title><h1>Questions</h1>..."  -> Document("Questions", "Questions ...")
    notes.txt  "plain words"                             -> Document("notes.txt", "plain words")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

MARKDOWN = frozenset({".md", ".markdown", ".mdown", ".mkd"})
HTML = frozenset({".html", ".htm", ".xhtml"})
TEXT = frozenset({".txt", ".text", ".rst"})
SUFFIXES = MARKDOWN | HTML | TEXT
"""The files a folder index reads; any other file is skipped."""

MAX_BYTES = 4 * 1024 * 1024
"""Larger files are skipped: a search index of a folder, not of data dumps."""

_ATX = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SETEXT = re.compile(r"^(?=\S)(.+?)\s*\n\s{0,3}(?:=+|-+)\s*$", re.MULTILINE)
_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.DOTALL)
_SPACE = re.compile(r"[ \t\r\f\v]+")
_BLANK = re.compile(r"\n\s*\n+")
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg"})
_BLOCKS = frozenset({"p", "div", "br", "li", "tr", "section", "article", "pre", "table", *_HEADINGS})


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    text: str


def supported(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def read_document(path: Path) -> Document:
    """``path`` as a document; raises ``OSError`` (unreadable) or ``ValueError`` (too large)."""
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{path} is larger than {MAX_BYTES} bytes")
    source = raw.decode("utf-8", errors="replace")
    suffix = path.suffix.lower()
    if suffix in HTML:
        return _html(source, path.name)
    if suffix in MARKDOWN:
        return _markdown(source, path.name)
    return Document(path.name, _tidy(source))


def _markdown(source: str, name: str) -> Document:
    body = _FRONT_MATTER.sub("", source, count=1)
    atx, setext = _ATX.search(body), _SETEXT.search(body)
    found = [m for m in (atx, setext) if m is not None]
    first = min(found, key=lambda m: m.start()) if found else None
    title = first.group(1).strip() if first is not None else name
    return Document(title or name, _tidy(body))


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.heading: str | None = None
        self.title = ""
        self._skip = 0
        self._in_heading = False
        self._in_title = False
        self._heading_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADINGS and self.heading is None:
            self._in_heading = True
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED and self._skip:
            self._skip -= 1
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADINGS and self._in_heading:
            self._in_heading = False
            self.heading = " ".join("".join(self._heading_parts).split())
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data
            return
        if self._in_heading:
            self._heading_parts.append(data)
        self.parts.append(data)


def _html(source: str, name: str) -> Document:
    parser = _HtmlText()
    parser.feed(source)
    parser.close()
    title = parser.heading or " ".join(parser.title.split()) or name
    return Document(title, _tidy("".join(parser.parts)))


def _tidy(text: str) -> str:
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return _BLANK.sub("\n\n", "\n".join(lines)).strip()
