"""The thinking budget, decided and enforced in one place (imports core, engine, catalogue, thinking).

The policy, in the order a request meets it:

1. **How much.** ``decide_budget``: the request's ``thinking_budget`` in ``[1, max_cot]``, else the
   model's ``max_cot``. Without ``max_tokens`` a thinking request may write the whole budget plus
   the model's answer cap (``default_max_tokens``).
2. **Where to pause.** ``ThinkingBudget.checkpoint``: the engine pauses the sequence once reasoning
   reaches the budget, unless ``</think>`` came first. Prompted thinking also pauses when the
   model tries to end while the block is still open.
3. **What to inject.** ``ThinkingBudget.resume_tokens``: at the budget, Qwen3's early-stop
   instruction; at an unclosed end, just the closing tag. Both go into the *same* sequence, are
   neither shown nor counted, and the model answers after them::

       ...reasoning<budget reached>\\n\\nConsidering the limited time by the user, I have to give the
       solution based on the thinking directly now.\\n</think>\\n\\n<the answer>
"""

from __future__ import annotations

from thinkserve.catalogue.spec import ModelSpec
from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import ChatRequest
from thinkserve.engine.protocol import Checkpoint, Paused
from thinkserve.thinking.chat_format import CLOSE_THINK, ChatFormat, Prompt
from thinkserve.thinking.parser import THINK_END

# The stop-thinking instruction of the Qwen3 technical report (section 4.3), appended at the budget.
EARLY_STOP = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking "
    "directly now.\n</think>\n\n"
)


def decide_budget(spec: ModelSpec, request: ChatRequest) -> int:
    """The reasoning cap: the request's ``thinking_budget`` or the model's maximum."""
    budget = request.thinking_budget
    if budget is None:
        return spec.max_cot
    if budget < 1 or budget > spec.max_cot:
        raise InvalidParameter(
            f"The thinking_budget parameter must be a positive integer and not greater than {spec.max_cot}",
            param="thinking_budget",
        )
    return budget


def default_max_tokens(spec: ModelSpec, *, thinking: bool, budget: int) -> int:
    """The cap on sampled tokens when the request sets no ``max_tokens``."""
    return budget + spec.max_output if thinking else spec.max_output


class ThinkingBudget:
    """Enforces a budget on the sequences of one model file: the checkpoint, then what to inject."""

    def __init__(self, chat: ChatFormat) -> None:
        self._chat = chat
        tokenizer = chat.tokenizer
        self._early_stop = tokenizer.encode(EARLY_STOP, special=True)
        self._close = tokenizer.encode(CLOSE_THINK, special=True)

    def checkpoint(
        self, prompt: Prompt, budget: int, *, thinking: bool, max_tokens: int
    ) -> Checkpoint | None:
        """Where the engine pauses a sequence; None when the budget cannot be reached first.

        Prompted thinking always gets one, to close a block the model forgot to close.
        """
        chat = self._chat
        if not thinking or (budget >= max_tokens and not chat.prompted):
            return None
        # A model that writes its own opening tag spends one sampled token on it.
        limit = budget if prompt.opened or not chat.token_level else budget + 1
        if chat.token_level:
            return Checkpoint(limit=limit, until_token=chat.end_id, on_end=chat.prompted)
        return Checkpoint(limit=limit, until_text=THINK_END, on_end=chat.prompted)

    def resume_tokens(self, paused: Paused) -> list[int]:
        """The tokens to append after the checkpoint fired."""
        return list(self._close if paused.at_end else self._early_stop)
