"""The console's page and assets: served without data, offline (no external URL anywhere), small,
built from the committed sources, labelled in English and Chinese."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, app_with, serve, stop
from thinkserve.console.labels import LANGUAGES, labels
from thinkserve.console.page import static_dir
from thinkserve.engine.fake.engine import FakeEngine

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "web" / "console"
BUDGET_GZIP = 300 * 1024
# Strings in the bundled libraries that look like URLs and are never fetched: XML namespaces
# (DOMPurify, temml, uPlot) and links inside error messages (highlight.js, marked).
NEVER_FETCHED = {
    "http://www.w3.org/1998/Math/MathML",
    "http://www.w3.org/1999/xhtml",
    "http://www.w3.org/2000/svg",
    "https://github.com/highlightjs/highlight.js/issues/2277",
    "https://github.com/highlightjs/highlight.js/wiki/security",
    "https://github.com/markedjs/marked.",
}
URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s"'`)<>]*""")


@pytest.fixture
def live() -> Iterator[LiveServer]:
    server, running = serve(app_with(FakeEngine()))
    try:
        yield server
    finally:
        stop(running)


def _served_assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/console/static/[^"?]+)', page)


def test_page_and_assets_hold_no_external_url(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        page = http.get("/console")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert "script-src 'self';" in policy  # no inline script, no other origin
        assert URL.findall(page.text) == []
        assets = _served_assets(page.text)
        assert sorted(assets) == ["/console/static/console-style.css", "/console/static/console.js"]
        css = http.get("/console/static/console-style.css")
        fonts = re.findall(r'url\("?\./([^")]+)"?\)', css.text)
        assert fonts == ["Temml.woff2"]
        for path in [*assets, *(f"/console/static/{f}" for f in fonts)]:
            response = http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == policy
            if not path.endswith(".woff2"):
                found = set(URL.findall(response.text)) - NEVER_FETCHED
                assert found == set(), f"{path} names external URLs: {sorted(found)}"


def test_assets_weigh_at_most_300_kb_gzipped() -> None:
    total = 0
    for path in static_dir().iterdir():
        if path.suffix in (".js", ".css", ".woff2"):
            total += len(gzip.compress(path.read_bytes(), compresslevel=9))
    assert total <= BUDGET_GZIP, f"{total} bytes gzipped"


def test_the_page_speaks_english_and_chinese(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        english = http.get("/console").text
        chinese = http.get("/console", params={"lang": "zh"}).text
        by_header = http.get("/console", headers={"accept-language": "zh-CN,zh;q=0.9"}).text
        assert '<html lang="en">' in english and "Log in" in english
        assert '<html lang="zh-CN">' in chinese and "登录" in chinese and "用量" in chinese
        assert by_header == chinese
        config = re.search(r'<script type="application/json" id="console-config">(.*?)</script>', chinese)
        assert config is not None
        assert json.loads(config.group(1))["labels"] == dict(labels("zh"))
        assert http.get("/console/", follow_redirects=False).headers["location"] == "/console"


def test_labels_cover_every_key_the_front_end_uses() -> None:
    en, zh = labels("en"), labels("zh")
    assert LANGUAGES == ("en", "zh") and set(en) == set(zh)
    assert all(v.strip() for v in [*en.values(), *zh.values()])
    used: set[str] = set()
    for source in (SOURCES / "src").glob("*.js*"):
        used |= set(re.findall(r'\bt\("([a-z_]+\.[a-z_.0-9]+)"', source.read_text()))
    # Keys built at run time: their prefixes and the values they are built from.
    for prefix, names in {
        "nav": ["playground", "usage", "keys", "engines"],
        "engines.state": ["up", "down", "starting", "stopped"],
        "usage.chart": ["calls", "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens"],
        "play.stat": ["prompt", "cached", "reasoning", "answer", "ttft", "tps", "cost"],
    }.items():
        used |= {f"{prefix}.{n}" for n in names}
    missing = used - set(en)
    assert not missing, sorted(missing)


def test_committed_assets_are_built_from_the_sources(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (SOURCES / "node_modules" / "esbuild").exists():
        pytest.skip("the console's build tools are not installed (make console-assets installs them)")
    subprocess.run([node, "build.mjs", str(tmp_path)], cwd=SOURCES, check=True, timeout=300)
    built = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in static_dir().iterdir()}
    assert built == committed, "rebuild with `make console-assets` and commit src/thinkserve/console/static"
