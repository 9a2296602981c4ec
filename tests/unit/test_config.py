"""Settings: catalogue, config file, environment and flags, and the CLI's first-run key."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkserve.catalogue.spec import load_catalogue
from thinkserve.cli import _ensure_key
from thinkserve.config import load_settings
from thinkserve.core.errors import ConfigError

SEED_NAMES = """
qwen3-max-preview qwen-plus qwen-plus-latest qwen-plus-2025-04-28 qwen-flash qwen-flash-2025-07-28
qwen-turbo qwen-turbo-latest qwen-turbo-2025-04-28 qwen3-235b-a22b qwen3-32b qwen3-30b-a3b qwen3-14b
qwen3-8b qwen3-4b qwen3-1.7b qwen3-0.6b qwen3-next-80b-a3b-thinking qwen3-235b-a22b-thinking-2507
qwen3-30b-a3b-thinking-2507 qwq-plus qwq-plus-latest qwq-plus-2025-03-05 qwq-32b deepseek-v3.2
deepseek-v3.2-exp deepseek-v3.1 deepseek-r1 deepseek-r1-0528 kimi-k2-thinking
""".split()

NON_STREAM = """
qwen3-max-preview qwen-plus qwen-flash qwen-flash-2025-07-28 qwen-turbo qwen3-next-80b-a3b-thinking
qwen3-235b-a22b-thinking-2507 qwen3-30b-a3b-thinking-2507 deepseek-v3.2-exp deepseek-r1 deepseek-r1-0528
kimi-k2-thinking
""".split()


def test_catalogue_has_every_seed_name_with_its_rules() -> None:
    cat = load_catalogue()
    assert set(SEED_NAMES) <= set(cat)
    for name in SEED_NAMES:
        spec = cat[name]
        assert spec.non_stream is (name in NON_STREAM), name
    assert not cat["qwen-plus"].thinks_by_default()
    assert cat["qwen3-8b"].thinks_by_default() and cat["qwen3-8b"].soft_switch
    assert cat["qwq-plus"].mode == "thinking_only"
    assert cat["qwen-plus-2025-04-28"].soft_switch and not cat["qwen-plus"].soft_switch


def test_config_file_overrides_and_adds(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[server]\nport = 9001\napi_keys = ["k1"]\n[engines.small]\nmodel = "/x.gguf"\n'
        '[models."qwen3-0.6b"]\nengine = "small"\n[models."mine"]\nengine = "small"\nmode = "thinking_only"\n'
    )
    s = load_settings(f, environ={})
    assert s.port == 9001 and s.api_keys == ("k1",)
    assert s.models["qwen3-0.6b"].engine == "small" and s.models["qwen3-0.6b"].soft_switch
    assert s.models["mine"].mode == "thinking_only"
    s = load_settings(f, environ={"THINKSERVE_API_KEYS": "a, b"}, model="/m.gguf")
    assert s.api_keys == ("a", "b")
    assert set(s.engines) == {"default"} and s.engines["default"].model == "/m.gguf"
    assert {spec.engine for spec in s.models.values()} == {"default"}


@pytest.mark.parametrize(
    "text",
    [
        '[models."x"]\nmode = "sometimes"\n',
        '[models."x"]\nengine = "nope"\n',
        '[engines.e]\nn_ctx = "big"\n',
        '[models."x"]\ncolour = 1\n',
    ],
)
def test_bad_config_is_refused(tmp_path: Path, text: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(f, environ={})


def test_first_run_creates_and_keeps_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = load_settings(None, environ={"THINKSERVE_HOME": str(tmp_path)})
    from dataclasses import replace

    s = replace(s, data_dir=tmp_path)
    first = _ensure_key(s).api_keys
    assert len(first) == 1 and first[0].startswith("sk-")
    assert f"export DASHSCOPE_API_KEY={first[0]}" in capsys.readouterr().err
    assert _ensure_key(s).api_keys == first
