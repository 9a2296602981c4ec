"""Admission counts an estimate of the prompt; the exact count tops the token windows up."""

from __future__ import annotations

import pytest

from thinkserve.core.errors import RateLimited
from thinkserve.core.types import ChatRequest, Message
from thinkserve.platform.limits import Limits, LocalLimiter
from thinkserve.platform.port import Principal
from thinkserve.platform.throttle import Throttle
from thinkserve.service.generation import CHARS_PER_TOKEN, Checked


@pytest.mark.anyio
async def test_the_exact_prompt_count_tops_up_the_token_window() -> None:
    throttle = Throttle(LocalLimiter(), {"*": Limits(tpm=1000, tps=1000)})
    principal = Principal("key_x", "x")
    first = await throttle.admit(principal, None, "m", 100)
    first.exact_prompt(950)  # the estimate was 850 short
    first.release()
    with pytest.raises(RateLimited) as refused:
        await throttle.admit(principal, None, "m", 100)
    assert refused.value.code == "Throttling.AllocationQuota"
    # An estimate above the exact count is not charged twice (nor refunded).
    other = Principal("key_y", "y")
    second = await throttle.admit(other, None, "m", 900)
    second.exact_prompt(10)
    second.release()
    (await throttle.admit(other, None, "m", 100)).release()


def test_the_estimate_is_cheap_and_errs_low() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 100
    request = ChatRequest(model="m", messages=(Message("user", text),), stream=False)
    checked = Checked(request, None, None, False, 0, None)  # type: ignore[arg-type]
    assert checked.estimated_tokens == -(-len(text) // CHARS_PER_TOKEN)
    # The fox sentence is 10 words, 11 tokens in BPE vocabularies (45 characters): the estimate is below.
    assert checked.estimated_tokens < 11 * 100
