"""Bad ``enable_search`` requests get a 400 in the caller's dialect: no provider configured (Model
Studio's answer for a model without search), and malformed or unserved ``search_options``."""

from __future__ import annotations

from typing import Any

import dashscope
import httpx
import openai
import pytest
from dashscope import Generation as _Generation
from openai import OpenAI

from tests.conftest import API_KEY, LiveServer
from tests.search.conftest import SearchServer

Generation: Any = _Generation
NO_SEARCH = "This model does not support enable_search."
QUESTION = [{"role": "user", "content": "What is new?"}]


def test_openai_without_provider_is_model_studios_400(fake_server: LiveServer) -> None:
    client = OpenAI(api_key=API_KEY, base_url=fake_server.openai_base, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="qwen-plus", messages=QUESTION, extra_body={"enable_search": True}
        )
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["message"] == NO_SEARCH
    assert body["code"] == "invalid_parameter_error"
    assert body["type"] == "invalid_request_error"


def test_dashscope_without_provider_is_model_studios_400(
    fake_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", fake_server.dashscope_base)
    response = Generation.call(
        api_key=API_KEY, model="qwen-plus", messages=QUESTION, result_format="message", enable_search=True
    )
    assert response.status_code == 400
    assert response.code == "InvalidParameter"
    assert response.message == NO_SEARCH


def test_search_off_ignores_search_options(fake_server: LiveServer) -> None:
    """Model Studio: search_options count only with enable_search."""
    r = httpx.post(
        fake_server.openai_base + "/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "qwen-plus", "messages": QUESTION, "search_options": {"forced_search": "yes"}},
    )
    assert r.status_code == 200
    assert "search_info" not in r.json()


BAD_OPTIONS: list[tuple[Any, str]] = [
    ("turbo", "search_options"),
    ({"forced_search": "yes"}, "search_options.forced_search parameter is invalid"),
    ({"search_strategy": "fast"}, "must be one of turbo, max, agent, agent_max"),
    ({"search_strategy": "agent"}, "The search_options.search_strategy agent parameter is not supported"),
    ({"citation_format": "(<number>)"}, 'must be "[<number>]" or "[ref_<number>]"'),
    ({"enable_search_extension": True}, "search_options.enable_search_extension parameter is not supported"),
    ({"freshness": 7}, "search_options.freshness parameter is not supported"),
    ({"assigned_site_list": ["a.com"]}, "search_options.assigned_site_list parameter is not supported"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_search_options_openai(search_server: SearchServer, options: Any, message: str) -> None:
    r = httpx.post(
        search_server.live.openai_base + "/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "qwen-plus", "messages": QUESTION, "enable_search": True, "search_options": options},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert message in error["message"]
    assert error["code"] == "invalid_parameter_error"


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_search_options_dashscope(search_server: SearchServer, options: Any, message: str) -> None:
    r = httpx.post(
        search_server.live.dashscope_base + "services/aigc/text-generation/generation",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={
            "model": "qwen-plus",
            "input": {"messages": QUESTION},
            "parameters": {"enable_search": True, "search_options": options},
        },
    )
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidParameter"
    assert message in r.json()["message"]


@pytest.mark.parametrize("spelling", ["[]", "[<number>]"])
def test_both_spellings_of_a_citation_format(search_server: SearchServer, spelling: str) -> None:
    r = httpx.post(
        search_server.live.openai_base + "/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={
            "model": "qwen-plus",
            "messages": [{"role": "user", "content": "flamingo keys"}],
            "enable_search": True,
            "search_options": {
                "forced_search": True,
                "enable_source": True,
                "enable_citation": True,
                "citation_format": spelling,
            },
        },
    )
    assert r.status_code == 200
    content = r.json()["choices"][0]["message"]["content"]
    assert content.startswith("The flamingo procedure rotates keys [1], weekly [1]")


def test_dashscope_text_format_and_cumulative_stream_carry_search(search_server: SearchServer) -> None:
    url = search_server.live.dashscope_base + "services/aigc/text-generation/generation"
    body = {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": "flamingo keys"}]},
        "parameters": {
            "enable_search": True,
            "search_options": {"forced_search": True, "enable_source": True},
        },
    }
    headers = {"Authorization": f"Bearer {API_KEY}"}
    whole = httpx.post(url, json=body, headers=headers).json()
    assert whole["output"]["text"] == search_server.engine.answer
    assert whole["output"]["search_info"]["search_results"][0]["title"] == "Rotating keys"
    assert whole["usage"]["plugins"] == {"search": {"count": 1, "strategy": "turbo"}}
    body["parameters"]["incremental_output"] = False  # type: ignore[index]
    streamed = httpx.post(url, json=body, headers={**headers, "X-DashScope-SSE": "enable"}).text
    blocks = [line for line in streamed.splitlines() if line.startswith("data:")]
    assert all('"search_info":{"search_results":[{"index":1,' in b for b in blocks)
    assert all('"plugins":{"search":{"count":1,"strategy":"turbo"}}' in b for b in blocks)
    assert f'"text":"{search_server.engine.answer}","finish_reason":"stop"' in blocks[-1]
