"""The thinking budget's policy: how much, where the engine pauses, what is injected."""

from __future__ import annotations

from dataclasses import replace

import pytest

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ChatRequest, Message
from thinkserve.engine.fake.tokenizer import FakeTokenizer
from thinkserve.engine.protocol import Checkpoint, Paused
from thinkserve.thinking.budget import (
    EARLY_STOP,
    ThinkingBudget,
    decide_budget,
    default_max_tokens,
)
from thinkserve.thinking.chat_format import CLOSE_THINK, ChatFormat

SPEC = ModelSpec(name="m", max_cot=100, max_output=50)
REQUEST = ChatRequest(model="m", messages=(Message("user", "hi"),), stream=True)


def test_budget_defaults_to_max_cot_and_is_bounded_by_it() -> None:
    assert decide_budget(SPEC, REQUEST) == 100
    assert decide_budget(SPEC, replace(REQUEST, thinking_budget=7)) == 7
    for bad in (0, 101):
        with pytest.raises(InvalidParameter, match="not greater than 100"):
            decide_budget(SPEC, replace(REQUEST, thinking_budget=bad))


def test_default_max_tokens_leaves_the_answer_its_cap_after_the_budget() -> None:
    assert default_max_tokens(SPEC, thinking=True, budget=30) == 80
    assert default_max_tokens(SPEC, thinking=False, budget=30) == 50


def test_native_token_level_checkpoint_and_injected_text() -> None:
    tokenizer = FakeTokenizer()
    chat = ChatFormat(tokenizer)
    budget = ThinkingBudget(chat)
    prompt = chat.render(REQUEST.messages, thinking=True)
    # The model writes its own <think>, which costs one sampled token.
    assert budget.checkpoint(prompt, 10, thinking=True, max_tokens=80) == Checkpoint(
        limit=11, until_token=tokenizer.token_id("</think>"), on_end=False
    )
    # Native thinking with a budget that max_tokens reaches first: no pause at all.
    assert budget.checkpoint(prompt, 80, thinking=True, max_tokens=80) is None
    assert budget.checkpoint(prompt, 10, thinking=False, max_tokens=80) is None
    assert tokenizer.decode(budget.resume_tokens(Paused())) == EARLY_STOP
    assert tokenizer.decode(budget.resume_tokens(Paused(at_end=True))) == CLOSE_THINK


def test_prompted_text_level_checkpoint_always_pauses() -> None:
    chat = ChatFormat(FakeTokenizer(template=None))  # ChatML knows no thinking: prompted
    assert chat.prompted
    budget = ThinkingBudget(chat)
    prompt = chat.render(REQUEST.messages, thinking=True)
    assert prompt.opened  # the opening tag is in the prompt: no sampled token spent on it
    assert budget.checkpoint(prompt, 80, thinking=True, max_tokens=80) == Checkpoint(
        limit=80, until_token=chat.end_id, on_end=True
    )
