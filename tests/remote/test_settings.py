"""``kind = "remote"`` in a config file, and ``serve --upstream URL --tokenizer PATH``."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkserve.cli import build_parser
from thinkserve.config import load_settings
from thinkserve.core.errors import ConfigError
from thinkserve.engine.registry import settings_from_table
from thinkserve.engine.remote.settings import RemoteSettings, UpstreamSpec


def test_a_config_table_with_weights_and_protocols() -> None:
    table = {
        "kind": "remote",
        "tokenizer": "/models/qwen3/",
        "upstreams": [
            {"url": "http://10.0.0.5:8000/", "weight": 2},
            {"url": "http://10.0.0.6:8080", "protocol": "llamacpp"},
            "http://10.0.0.7:8000",
        ],
        "n_ctx": 32768,
        "eject_for": 10.0,
    }
    settings = settings_from_table("gpu", table)
    assert isinstance(settings, RemoteSettings) and not settings.own_process
    assert settings.upstreams == (
        UpstreamSpec("http://10.0.0.5:8000", 2.0, None),
        UpstreamSpec("http://10.0.0.6:8080", 1.0, "llamacpp"),
        UpstreamSpec("http://10.0.0.7:8000", 1.0, None),
    )
    assert (settings.n_ctx, settings.eject_for) == (32768, 10.0)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("upstreams", ["ftp://x"], "http"),
        ("upstreams", [{"url": "http://x", "weight": 0}], "weight"),
        ("upstreams", [{"url": "http://x", "protocol": "sglang"}], "protocol"),
        ("upstreams", [{"url": "http://x", "colour": "red"}], "colour"),
        ("upstreams", [3], "URL or a table"),
        ("read_timeout", -1.0, "positive"),
        ("affinity_threshold", 1.5, r"\[0, 1\]"),
        ("shards", 2, "unknown key"),
    ],
)
def test_bad_tables_are_config_errors(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_table("gpu", {"kind": "remote", key: value})


def test_a_pool_needs_upstreams_and_a_tokenizer() -> None:
    with pytest.raises(ConfigError, match="at least one upstream"):
        RemoteSettings("x", tokenizer="t.gguf").check()
    with pytest.raises(ConfigError, match="tokenizer"):
        RemoteSettings("x", upstreams=(UpstreamSpec("http://a"),)).check()


def test_upstream_flags_serve_every_name_from_the_pool(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["serve", "--upstream", "http://a:8000", "--upstream", "http://b:8000", "--tokenizer", "m.gguf"]
    )
    settings = load_settings(args.config, upstreams=args.upstream, tokenizer=args.tokenizer, environ={})
    remote = settings.engines["default"]
    assert isinstance(remote, RemoteSettings) and remote.tokenizer == "m.gguf"
    assert [u.url for u in remote.upstreams] == ["http://a:8000", "http://b:8000"]
    assert {spec.engine for spec in settings.models.values()} == {"default"}
    with pytest.raises(ConfigError, match="--tokenizer"):
        load_settings(upstreams=["http://a:8000"], environ={})
    # A config's remote engine keeps its other keys; the flags replace its upstreams.
    config = tmp_path / "thinkserve.toml"
    config.write_text(
        '[engines.default]\nkind = "remote"\ntokenizer = "t.json"\nupstreams = ["http://z"]\nn_ctx = 99\n'
    )
    merged = load_settings(config, upstreams=["http://a:8000"], environ={}).engines["default"]
    assert isinstance(merged, RemoteSettings)
    assert (merged.tokenizer, merged.n_ctx, [u.url for u in merged.upstreams]) == (
        "t.json",
        99,
        ["http://a:8000"],
    )
