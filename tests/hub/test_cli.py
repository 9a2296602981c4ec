"""``thinkserve pull``, ``models`` and ``rm`` as a user runs them, against the stand-in hubs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import API_KEY, free_port
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


def _wait_healthy(proc: subprocess.Popen[str], base: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"thinkserve serve exited with {proc.returncode}:\n{err[-4000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("thinkserve serve did not become healthy")


@pytest.mark.slow
def test_serve_model_reference_from_the_cache_with_the_hub_stopped(standin: Running, tmp_path: Path) -> None:
    """The issue's "done when": pull, stop the hub, `thinkserve serve --model REF`, the seed's example."""
    env = user_env(standin, tmp_path)
    env["THINKSERVE_API_KEYS"] = API_KEY
    scheme = "hf" if standin.hub.kind == "hf" else "modelscope"
    reference = f"{scheme}://{REPO}/{TINY}"
    assert run(env, "pull", reference).returncode == 0
    [row] = json.loads(run(env, "models", "--json").stdout)
    standin.stop()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "thinkserve", "serve", "--model", reference, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(proc, base)
        client = openai.OpenAI(api_key=API_KEY, base_url=f"{base}/compatible-mode/v1", max_retries=0)
        completion = client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "你是誰"}],
            extra_body={"enable_thinking": True},
            stream=True,
            stream_options={"include_usage": True},
        )
        reasoning = answer = ""
        usage = None
        for chunk in completion:
            if not chunk.choices:
                usage = chunk.usage
                continue
            delta = chunk.choices[0].delta
            reasoning += getattr(delta, "reasoning_content", None) or ""
            answer += delta.content or ""
        assert reasoning and answer
        assert usage is not None and usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens > 0
        card = client.models.retrieve("qwen-plus").model_extra or {}
        assert card["thinkserve"]["served_by"] == row["file"]
        assert card["thinkserve"]["thinking"] == "native"
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
