"""The chat's commands, history and cost (at the server's billing rules)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from thinkserve.chat.conversation import Conversation, is_command, run_command
from thinkserve.chat.cost import money, prices_from
from thinkserve.chat.events import Tokens
from thinkserve.platform.billing import Price


def test_commands_switch_thinking_budget_model_and_history() -> None:
    c = Conversation(model="qwen-plus")
    assert c.thinking_label() == "thinking model default"
    assert run_command(c, "/think").message == "thinking on"
    assert c.call("x").enable_thinking is True
    assert run_command(c, "/budget 50").message == "thinking on, budget 50"
    assert c.call("x").thinking_budget == 50
    assert "usage" in run_command(c, "/budget -3").message and c.thinking_budget == 50
    run_command(c, "/budget off")
    assert c.thinking_budget is None
    assert run_command(c, "/no_think").message == "thinking off"
    assert c.call("x").enable_thinking is False
    run_command(c, "/model qwen3-8b")
    assert c.call("x").model == "qwen3-8b"
    c.record("q1", "a1", None)
    assert c.call("q2").messages == (
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    )
    assert run_command(c, "/clear").message == "conversation cleared"
    assert c.call("q").messages == ({"role": "user", "content": "q"},)
    assert run_command(c, "/exit").leave
    assert "unknown command" in run_command(c, "/frobnicate").message


def test_a_command_is_a_line_that_starts_with_a_slash() -> None:
    assert is_command("/think") and is_command("  /usage")
    assert not is_command("what is 2+2? /no_think")


def test_cost_uses_the_thinking_price_only_for_calls_that_thought() -> None:
    prices = {"qwen-plus": Price(Decimal("0.8"), Decimal("2"), Decimal("0.16"), Decimal("8"))}
    c = Conversation(model="qwen-plus", prices=prices)
    # 100 prompt tokens (40 cached), 50 output of which 30 reasoning: thinking price.
    thought = c.record("q", "a", Tokens(prompt=100, cached=40, output=50, reasoning=30))
    assert thought == (60 * 800 + 40 * 160 + 50 * 8000)
    plain = c.record("q", "a", Tokens(prompt=100, cached=0, output=50, reasoning=0))
    assert plain == 100 * 800 + 50 * 2000
    assert c.cost_nano == thought + plain
    assert money(thought) == "0.0004544"
    c.model = "unpriced"
    assert c.record("q", "a", Tokens(1, 0, 1, 0)) is None
    report = run_command(c, "/usage").message
    assert report.startswith("3 call(s): prompt 201 (cached 40), output 101 (reasoning 30), cost 0.0006344")
    assert "+1 call(s) without a price" in report


def test_prices_come_from_the_servers_config_file(tmp_path: Path) -> None:
    config = tmp_path / "thinkserve.toml"
    config.write_text('[prices."qwen3-8b"]\ninput = 1\noutput = 2\n')
    assert prices_from(config) == {"qwen3-8b": Price(Decimal(1), Decimal(2))}
    assert prices_from(None) == {}
