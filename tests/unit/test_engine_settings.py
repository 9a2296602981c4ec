"""``[engines.NAME]`` tables: one settings type per kind, chosen by ``kind``."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkserve.config import load_settings
from thinkserve.core.errors import ConfigError
from thinkserve.engine.fake.settings import FakeSettings
from thinkserve.engine.llamacpp.settings import LlamaCppSettings
from thinkserve.engine.registry import KINDS, model_file, settings_from_table


def test_every_kind_is_in_the_table() -> None:
    assert set(KINDS) == {"llamacpp", "fake", "vllm", "remote"}


def test_tables_become_the_settings_of_their_kind(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[engines.default]\nmodel = "/m.gguf"\nn_ctx = 2048\nn_seq = 2\n'
        '[engines.scripted]\nkind = "fake"\nmax_queue = 100000\n'
    )
    engines = load_settings(f, environ={}).engines
    assert engines["default"] == LlamaCppSettings("default", model="/m.gguf", n_ctx=2048, n_seq=2)
    assert engines["scripted"] == FakeSettings("scripted", max_queue=100000)
    assert engines["scripted"].kind == "fake"
    assert model_file(engines["scripted"], tmp_path) == Path("fake")


def test_the_default_engine_is_llamacpp_on_the_default_model() -> None:
    default = load_settings(None, environ={}).engines["default"]
    assert default == LlamaCppSettings("default")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "tensorrt"}, "unknown kind 'tensorrt'"),
        ({"kind": "fake", "n_seq": 4}, "unknown key 'n_seq'"),
        ({"n_threads": True}, "bad value True"),
        ({"model": 3}, "bad value 3"),
    ],
)
def test_bad_tables_are_refused(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_table("e", table)


def test_a_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        model_file(LlamaCppSettings("e", model=str(tmp_path / "nope.gguf")), tmp_path)


def test_the_model_flag_serves_that_file_on_llamacpp(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[engines.default]\nkind = "fake"\n')
    engines = load_settings(f, environ={}, model="/m.gguf").engines
    assert engines == {"default": LlamaCppSettings("default", model="/m.gguf")}
