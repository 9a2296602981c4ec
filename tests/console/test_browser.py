"""The console in a real browser: headless Chromium (Debian's, driven by Playwright from
``tests/console/flow.mjs``) against ``thinkserve serve`` on the tiny Qwen3 model.

It logs in, streams a playground answer with thinking on and a budget (reasoning, then the
answer), goes on to a second turn, creates a key, uses it, revokes it and sees it refused, reads
the usage page and checks its numbers against ``thinkserve usage --json``, and saves screenshots
into ``docs/``. No request leaves the server's origin.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import engine_model
from tests.platform.conftest import ADMIN_KEY, ServerProcess, cli, start_server

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
# Screenshots go to a temporary folder, so a test run leaves the tree clean;
# THINKSERVE_SCREENSHOTS=docs refreshes the ones the README shows.
SHOTS_ENV = os.environ.get("THINKSERVE_SCREENSHOTS")
CHROMIUM = Path(os.environ.get("THINKSERVE_CHROMIUM", "/usr/bin/chromium"))


def _browser_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the browser tests need it (and `make install-dev`)")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        pytest.skip("playwright-core is not installed in tests/console: run `make install-dev`")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium) to run them")
    return node


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    home = tmp_path_factory.mktemp("console")
    config = home / "thinkserve.toml"
    config.write_text(
        f'[server]\napi_keys = ["{ADMIN_KEY}"]\ndata_dir = "{home / "data"}"\n'
        f'[engines.default]\nmodel = "{engine_model()}"\nn_ctx = 4096\nn_seq = 2\n'
        '[prices."qwen-plus"]\ninput = 0.8\ncached_input = 0.16\noutput = 2\nthinking_output = 8\n'
    )
    running = start_server(config, log=home / "server.log")
    try:
        yield running, config
    finally:
        running.stop()


@pytest.fixture(scope="module")
def flow(server: tuple[ServerProcess, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node = _browser_or_skip()
    running, _ = server
    result = tmp_path_factory.mktemp("flow") / "flow.json"
    shots = Path(SHOTS_ENV).resolve() if SHOTS_ENV else tmp_path_factory.mktemp("shots")
    env = {
        **os.environ,
        "THINKSERVE_URL": running.base_url,
        "ADMIN_KEY": ADMIN_KEY,
        "OUT": str(result),
        "SHOTS": str(shots),
        "CHROMIUM": str(CHROMIUM),
    }
    done = subprocess.run(
        [node, "flow.mjs"], cwd=HERE, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    seen = result.read_text() if result.exists() else "(nothing written)"
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{seen}\n{running.log.read_text()[-3000:]}"
    data: dict[str, Any] = json.loads(seen)
    data["shots"] = str(shots)
    return data


def test_nothing_leaves_the_server(flow: dict[str, Any]) -> None:
    assert flow["external"] == []
    assert flow["pageErrors"] == []


def test_playground_streams_reasoning_then_answer(flow: dict[str, Any]) -> None:
    first = flow["first"]
    phases = [p.split(":")[1] for p in first["phases"] if p.startswith("1:")]
    assert phases.index("reasoning") < phases.index("answer") < phases.index("done"), phases
    assert first["reasoning"].strip() and first["answer"]
    assert first["reasoningOpen"] is False  # folded away once the turn is over
    stats = first["stats"]
    reasoning = int(stats["reasoning"].replace(",", ""))
    assert 0 < reasoning <= 24
    assert int(stats["prompt"].replace(",", "")) > 0 and int(stats["answer"].replace(",", "")) > 0
    assert stats["ttft"].endswith(" ms") and float(stats["tps"]) > 0
    # The cost of this call at the configured prices (thinking-mode output price: it reasoned).
    prompt, cached = int(stats["prompt"].replace(",", "")), int(stats["cached"].replace(",", ""))
    output = reasoning + int(stats["answer"].replace(",", ""))
    expected = ((prompt - cached) * 0.8 + cached * 0.16 + output * 8) / 1e6
    assert abs(float(stats["cost"]) - expected) < 1e-9
    assert "81,920" in flow["rules"] and "hybrid" in flow["rules"]
    # The requests as the API received them: thinking on with the budget, then off, with history.
    one, two = flow["requests"][:2]
    assert one["enable_thinking"] is True and one["thinking_budget"] == 24 and one["stream"] is True
    assert two["enable_thinking"] is False and "thinking_budget" not in two
    assert [m["role"] for m in two["messages"]] == ["user", "assistant", "user"]
    assert two["messages"][1]["reasoning_content"] == first["reasoning"]
    assert two["messages"][1]["content"].strip()
    second = flow["second"]
    assert second["reasoningPanes"] == 0 and second["stats"]["reasoning"] == "0" and second["answer"]


def test_no_think_directive(flow: dict[str, Any]) -> None:
    """qwen3-8b honours /no_think: the message carries it and the answer comes without reasoning."""
    asked = flow["requests"][2]
    assert asked["model"] == "qwen3-8b" and asked["messages"] == [
        {"role": "user", "content": "Hello /no_think"}
    ]
    directive = flow["directive"]
    assert directive["shown"].strip() == "/no_think"
    assert directive["reasoningPanes"] == 0 and directive["stats"]["reasoning"] == "0"


def test_markdown_code_and_maths_are_rendered_and_sanitised(flow: dict[str, Any]) -> None:
    rendered = flow["rendering"]
    assert rendered["strong"] == "Pythagoras" and rendered["code"] == 1
    assert rendered["inlineMath"] == 1 and rendered["blockMath"] == 1
    assert rendered["scripts"] == 0  # <img onerror> and <script> from the model are dropped
    assert rendered["reasoning"] == "Think of $a^2$."  # reasoning is shown as text


def test_roles_and_keyboard(flow: dict[str, Any]) -> None:
    assert flow["wrongKey"] == {"error": "This key is not valid here.", "kept": 0}
    assert flow["kept"] == {"session": ["thinkserve.console.key"], "local": 0}
    assert flow["navAdmin"] == ["Playground", "Usage", "Keys", "Engines"]
    assert flow["key"]["navVisible"] == ["Playground", "Usage"]
    assert flow["chinese"]["nav"] == ["Playground", "用量", "API Key", "引擎"]
    assert flow["chinese"]["title"] == "用量"


def test_a_new_key_works_until_it_is_revoked(flow: dict[str, Any]) -> None:
    key = flow["key"]
    assert key["before"] == 200 and key["after"] == 401
    assert key["id"].startswith("key_")
    cells = key["cells"]
    assert cells[0] == "browser-test" and "ws-browser" in cells and "60" in cells and "100,000" in cells
    # Logged in as itself, it saw its own call only.
    assert key["ownRows"] == 1 and key["ownCalls"] == ["1"]


def _cli_rows(config: Path) -> list[dict[str, Any]]:
    done = cli("usage", "--config", str(config), "--since", "48h", "--json")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_usage_page_shows_the_numbers_of_the_cli(
    flow: dict[str, Any], server: tuple[ServerProcess, Path]
) -> None:
    rows = _cli_rows(server[1])
    assert rows, "the CLI saw no usage"
    page = {(r["hour"], r["model"]): r for r in flow["usageRows"]}
    assert set(page) == {(r["hour"], r["model"]) for r in rows}
    for row in rows:
        shown = page[(row["hour"], row["model"])]
        for field in (
            "calls",
            "errors",
            "input_tokens",
            "cached_tokens",
            "output_tokens",
            "reasoning_tokens",
        ):
            assert int(shown[field]) == row[field], field
        assert shown["cost"] == row["cost"]
        for name, values in (("latency", row["latency_ms"]), ("ttft", row["ttft_ms"])):
            for p in ("p50", "p95"):
                assert shown[f"{name}_{p}"] == ("–" if values[p] is None else _number(values[p])), (name, p)
    # The playground's two calls and the new key's one; the /no_think call.
    assert sum(r["calls"] for r in rows if r["model"] == "qwen-plus") == 3
    assert sum(r["calls"] for r in rows if r["model"] == "qwen3-8b") == 1
    # The charts' legends, at the newest hour, show the same figures.
    newest = [r for r in rows if r["hour"] == rows[-1]["hour"]]
    for row in newest:
        assert re.search(rf"{re.escape(row['model'])}\s*{row['calls']:,}(?!\d)", flow["callsLegend"]), flow[
            "callsLegend"
        ]
        output = f"{row['output_tokens']:,}"
        assert re.search(rf"{re.escape(row['model'])}\s*{output}(?!\d)", flow["outputLegend"]), flow[
            "outputLegend"
        ]
    # And the CSV export carries them too.
    exported = list(csv.DictReader(io.StringIO(flow["csv"])))
    assert [(r["hour"], r["model"], int(r["calls"]), r["cost"]) for r in exported] == [
        (r["hour"], r["model"], r["calls"], r["cost"]) for r in rows
    ]


def _number(value: float) -> str:
    """A float as JavaScript's String() writes it."""
    return str(int(value)) if value == int(value) else repr(value)


def test_engines_page_is_live(flow: dict[str, Any]) -> None:
    engine = flow["engine"]
    assert engine["state"] == "up" and engine["slots"] == "0 / 2" and engine["queue"] == "0"
    assert float(engine["tps"]) >= 0


def test_screenshots_are_saved(flow: dict[str, Any]) -> None:
    for name in ("console-playground.png", "console-usage.png", "console-keys.png"):
        assert (Path(flow["shots"]) / name).stat().st_size > 10_000, name
