"""``serve --model hf://…`` and ``modelscope://…`` from the cache with the hub gone, on the real engine."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import API_KEY, serve, stop
from tests.hub.conftest import TINY, Running, tiny_bytes
from tests.hub.standins import REPO
from thinkserve.app import create_app
from thinkserve.config import load_settings
from thinkserve.core.errors import ConfigError
from thinkserve.engine.llamacpp.settings import LlamaCppSettings
from thinkserve.hub.commands import prepare_serve
from thinkserve.hub.manifest import Manifest
from thinkserve.hub.progress import RichReporter
from thinkserve.hub.puller import hub_for, pull_reference, record
from thinkserve.hub.reference import Reference
from thinkserve.platform.static_keys import StaticKeys


@pytest.fixture
def hub_env(standin: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment a user would set: the hub's endpoint, its cache, thinkserve's data folder."""
    monkeypatch.setenv("HF_ENDPOINT", standin.url)
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", standin.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "modelscope"))
    monkeypatch.setenv("THINKSERVE_HOME", str(tmp_path / "thinkserve"))
    scheme = "hf" if standin.hub.kind == "hf" else "modelscope"
    return f"{scheme}://{REPO}/{TINY}"


def _pull(reference: str, names: list[str], data_dir: Path) -> Path:
    ref = Reference.parse(reference)
    with RichReporter() as reporter:
        pulled = pull_reference(hub_for(ref.hub), ref, reporter)
    record(Manifest(data_dir), pulled, names, None)
    return pulled.paths[0]


def test_a_reference_not_pulled_is_an_error_naming_the_pull(hub_env: str) -> None:
    settings = load_settings(model=hub_env)
    with pytest.raises(ConfigError, match=rf"thinkserve pull {hub_env}"):
        prepare_serve(settings, argparse.Namespace(pull=False, model=hub_env))


def test_serve_pull_fetches_what_the_config_names(hub_env: str, tmp_path: Path) -> None:
    config = tmp_path / "thinkserve.toml"
    config.write_text(f'[engines.tiny]\nmodel = "{hub_env}"\n\n[models."my-tiny"]\nengine = "tiny"\n')
    settings = prepare_serve(load_settings(config), argparse.Namespace(pull=True, model=None))
    engine = settings.engines["tiny"]
    assert isinstance(engine, LlamaCppSettings) and engine.model is not None
    assert Path(engine.model).read_bytes() == tiny_bytes()
    assert settings.models["my-tiny"].engine == "tiny"


def test_a_pulled_name_is_served_by_its_own_file(hub_env: str, tmp_path: Path) -> None:
    settings = load_settings()
    path = _pull(hub_env, ["qwen3-0.6b"], settings.data_dir)
    prepared = prepare_serve(settings, argparse.Namespace(pull=False, model=None))
    assert prepared.models["qwen3-0.6b"].engine == "pulled-qwen3-0.6b"
    pulled = prepared.engines["pulled-qwen3-0.6b"]
    assert isinstance(pulled, LlamaCppSettings) and pulled.model == str(path)
    # Everything else stays on the default; --model still serves every name with one file.
    assert prepared.models["qwen-plus"].engine == "default"
    forced = prepare_serve(load_settings(model=hub_env), argparse.Namespace(pull=False, model=hub_env))
    assert {spec.engine for spec in forced.models.values()} == {"default"}


@pytest.mark.slow
def test_serve_model_reference_offline_answers_the_seed_example(standin: Running, hub_env: str) -> None:
    settings = load_settings(model=hub_env)
    path = _pull(hub_env, [], settings.data_dir)
    standin.stop()  # from here on, no hub

    settings = prepare_serve(settings, argparse.Namespace(pull=False, model=hub_env))
    engine = settings.engines["default"]
    assert isinstance(engine, LlamaCppSettings) and engine.model == str(path)
    # In this process and without the AMX probe: the test is about where the file comes from.
    settings = replace(
        settings,
        api_keys=(API_KEY,),
        engines={"default": replace(engine, own_process=False, amx="off", n_ctx=4096, n_seq=2)},
    )
    live, running = serve(create_app(settings, gate=StaticKeys(settings.api_keys)))
    try:
        client = openai.OpenAI(api_key=API_KEY, base_url=live.openai_base, max_retries=0)
        completion = client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "你是誰"}],
            extra_body={"enable_thinking": True},
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=200,
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
        assert reasoning and usage is not None
        assert usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens > 0
        cards = httpx.get(f"{live.openai_base}/models", headers={"Authorization": f"Bearer {API_KEY}"}).json()
        by_name = {card["id"]: card["thinkserve"] for card in cards["data"]}
        assert by_name["qwen-plus"]["served_by"] == str(path)
        assert by_name["qwen-plus"]["thinking"] == "native"  # the GGUF's own Qwen3 template
    finally:
        stop(running)
