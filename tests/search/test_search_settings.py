"""The ``[search]`` table and ``serve --search-docs``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.platform.conftest import cli
from thinkserve.config import load_settings
from thinkserve.core.errors import ConfigError
from thinkserve.search.settings import SearchSettings, parse_search


def test_config_file_names_a_provider(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[search]\ndocs = "~/kb"\ndocs_base_url = "https://kb.lan/"\n')
    search = load_settings(config, environ={}).search
    assert search == SearchSettings(docs=Path("~/kb").expanduser(), docs_base_url="https://kb.lan/")
    assert search.configured
    assert not load_settings(None, environ={}).search.configured
    assert parse_search({"searxng_url": "http://127.0.0.1:8888", "timeout": 2}) == SearchSettings(
        searxng_url="http://127.0.0.1:8888", timeout_s=2.0
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"docs": "/a", "searxng_url": "http://x"}, "two providers"),
        ({"searxng_url": "ftp://x"}, "must be an http(s) URL"),
        ({"docs": 3}, "must be a folder path"),
        ({"timeout": 0}, "timeout must be in (0, 120]"),
        ({"timeout": True}, "timeout must be in (0, 120]"),
        ({"doc": "/a"}, "unknown key(s) ['doc']"),
    ],
)
def test_bad_search_tables(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_search(table)
    assert message in str(caught.value)


def test_serve_refuses_a_missing_docs_folder(tmp_path: Path) -> None:
    done = cli("serve", "--search-docs", str(tmp_path / "missing"), "--port", "0", check=False)
    assert done.returncode == 2
    assert "is not a folder" in done.stderr
