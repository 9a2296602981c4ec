"""``thinkserve pull``, ``models`` and ``rm`` as a user runs them, against the stand-in hubs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port
from tests.hub.conftest import TINY, Running, tiny_bytes
from tests.hub.standins import REPO
from tests.hub.test_layout import library_download


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thinkserve", *args], env=env, capture_output=True, text=True, timeout=120
    )


def user_env(standin: Running, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_ENDPOINT=standin.url,
        MODELSCOPE_ENDPOINT=standin.url,
        HF_HOME=str(tmp_path / "hf"),
        MODELSCOPE_CACHE=str(tmp_path / "modelscope"),
        THINKSERVE_HOME=str(tmp_path / "thinkserve"),
        COLUMNS="120",
    )
    env.pop("HF_TOKEN", None)
    return env


def test_pull_models_rm(standin: Running, tmp_path: Path) -> None:
    env = user_env(standin, tmp_path)
    scheme = "hf" if standin.hub.kind == "hf" else "modelscope"
    reference = f"{scheme}://{REPO}/{TINY}"

    pulled = run(env, "pull", reference, "--as", "qwen3-0.6b")
    assert pulled.returncode == 0, pulled.stderr
    assert f"pulled {reference} (16.6 MB, serves qwen3-0.6b)" in pulled.stdout
    assert TINY in pulled.stderr  # the progress bar's label (rich draws the bar on stderr)

    listed = run(env, "models", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["names"] == ["qwen3-0.6b"] and row["source"] == reference and row["size"] == len(tiny_bytes())
    assert Path(row["file"]).read_bytes() == tiny_bytes()
    table = run(env, "models")
    assert "qwen3-0.6b" in table.stdout and reference in table.stdout

    # With the hub gone, pulling it again says it is there and could not be checked.
    standin.stop()
    offline = run(env, "pull", reference)
    assert offline.returncode == 0, offline.stderr
    assert "not checked for a newer version" in offline.stderr and f"pulled {reference}" in offline.stdout

    removed = run(env, "rm", "qwen3-0.6b")
    assert removed.returncode == 0, removed.stderr
    assert "16.6 MB freed" in removed.stdout
    assert not Path(row["file"]).exists()
    assert json.loads(run(env, "models", "--json").stdout) == []


def test_pull_explains_what_cannot_be_pulled(standin: Running, tmp_path: Path) -> None:
    env = user_env(standin, tmp_path)
    commercial = run(env, "pull", "qwen-plus")
    assert commercial.returncode == 2
    assert "no open weights" in commercial.stderr and '[models."qwen-plus"]' in commercial.stderr
    unknown = run(env, "pull", "no-such-model")
    assert unknown.returncode == 2 and "qwen3-8b" in unknown.stderr
    bad = run(env, "pull", "hf://only-org")
    assert bad.returncode == 2 and "hf://ORG/REPO/FILE" in bad.stderr


def test_pull_with_the_hub_unreachable_names_the_mirror_settings(standin: Running, tmp_path: Path) -> None:
    env = user_env(standin, tmp_path)
    env["HF_ENDPOINT"] = env["MODELSCOPE_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    hub = "hf" if standin.hub.kind == "hf" else "modelscope"
    failed = run(env, "pull", "qwen3-8b", "--hub", hub)
    assert failed.returncode == 1
    assert ("HF_ENDPOINT" if hub == "hf" else "MODELSCOPE_ENDPOINT") in failed.stderr
    assert "--hub" in failed.stderr


def test_models_lists_and_rm_removes_what_other_tools_downloaded(standin: Running, tmp_path: Path) -> None:
    env = user_env(standin, tmp_path)
    cache = tmp_path / "hf" / "hub" if standin.hub.kind == "hf" else tmp_path / "modelscope"
    downloaded = library_download(standin, cache)
    scheme = "hf" if standin.hub.kind == "hf" else "modelscope"
    [row] = json.loads(run(env, "models", "--json").stdout)
    assert row == {
        "names": [],
        "source": f"{scheme}://{REPO}/{TINY}",
        "quant": None,
        "size": len(tiny_bytes()),
        "file": str(downloaded),
    }
    removed = run(env, "rm", row["source"])
    assert removed.returncode == 0, removed.stderr
    assert not downloaded.exists()
    assert run(env, "rm", row["source"]).returncode == 2
