"""A scripted engine for API-level tests and gateway benchmarks (imports core, engine).

It speaks the real protocol (checkpoints, pause/resume, cancel, prefix "cache") over a toy
tokenizer with one token per character, plus the special tokens of a Qwen3-style chat template.
The reply is scripted: with thinking on it writes ``<think>\\n{reasoning}\\n</think>\\n\\n{answer}``
then ``<|im_end|>``; with the template's thinking-off prompt it writes only the answer. When the
prompt offers tools (``<tools>``) and fewer than ``tool_rounds`` (default 1) tool results followed
the last question (so by default: unless its last turn is a tool's result), the answer is a Hermes
call of the tool whose name and description share the most words (or CJK characters) with the
question (the first on a tie), each required string parameter set to ``tool_value``, except one
named ``query``, which gets the question itself (as a model searching for it would write)::

    <tool_call>
    {"name": "get_current_weather", "arguments": {"location": "Hangzhou"}}
    </tool_call>

It does not constrain decoding (``EngineRequest.constraint`` is ignored): what it writes is
scripted either way.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field

from thinkserve.core.errors import Overloaded
from thinkserve.engine.checkpoint import CheckpointState
from thinkserve.engine.fake.tokenizer import FakeTokenizer
from thinkserve.engine.protocol import (
    EngineEvent,
    EngineFinished,
    EngineRequest,
    EngineStats,
    Health,
    Paused,
    TokenEvent,
)


@dataclass(slots=True)
class FakeStats:
    submitted: int = 0
    cancelled: int = 0
    prompt_tokens_evaluated: int = 0
    resumed: int = 0
    active: int = 0
    sampled_tokens: int = 0
    """Tokens sampled over all sequences (what metering must account for)."""
    prompts: list[list[int]] = field(default_factory=list)
    """The last few prompts submitted (what a test may read back), oldest first."""


class FakeSequence:
    def __init__(self, engine: FakeEngine, request: EngineRequest, script: list[int], cached: int) -> None:
        self._engine = engine
        self._request = request
        self._script = script
        self._cached = cached
        self._cancelled = False
        self._resume: asyncio.Queue[list[int]] = asyncio.Queue()

    def cancel(self) -> None:
        if not self._cancelled:
            self._cancelled = True
            self._engine.stats.cancelled += 1

    async def settle(self, limit_s: float) -> list[EngineEvent]:
        # It samples only when iterated: nothing can be on its way.
        self.cancel()
        return []

    def resume(self, tokens: Seq[int]) -> None:
        self._engine.stats.resumed += 1
        self._resume.put_nowait(list(tokens))

    async def __aiter__(self) -> AsyncIterator[EngineEvent]:
        engine, request, tok = self._engine, self._request, self._engine.tokenizer
        engine.stats.active += 1
        try:
            sampled = 0
            checkpoint = CheckpointState(request.checkpoint)
            script = self._script
            i = 0
            while i < len(script):
                if self._cancelled:
                    return
                token = script[i]
                if checkpoint.due(sampled):
                    checkpoint.pause()
                    yield Paused()
                    injected = await self._resume.get()
                    checkpoint.resume()
                    for t in injected:
                        yield TokenEvent(t, tok.piece(t), injected=True)
                    # Continue with the answer part of the script, as a model would.
                    end = tok.token_id("</think>")
                    i = script.index(end) + 1 if end in script else i
                    while i < len(script) and tok.piece(script[i]) in "\n":
                        i += 1
                    continue
                if tok.is_end(token) or sampled >= request.max_tokens:
                    break
                if engine.delay:
                    await asyncio.sleep(engine.delay)
                else:
                    await asyncio.sleep(0)
                sampled += 1
                engine.stats.sampled_tokens += 1
                piece = tok.piece(token)
                if checkpoint.armed:
                    checkpoint.saw_marker(token, piece)
                yield TokenEvent(token, piece)
                i += 1
            cut = sampled >= request.max_tokens and i < len(script)
            yield EngineFinished("length" if cut else "stop", len(request.prompt), self._cached, sampled)
        finally:
            engine.stats.active -= 1


class FakeEngine:
    """Scripted replies; ``delay`` seconds between tokens (0: as fast as the event loop goes)."""

    def __init__(
        self,
        *,
        reasoning: str = "The user asks something simple. I will answer briefly.",
        answer: str = "Hello! I am a helpful assistant.",
        delay: float = 0.0,
        context_length: int = 4096,
        max_queue: int = 1000,
        tool_value: str = "Hangzhou",
        tool_rounds: int = 1,
    ) -> None:
        self.reasoning = reasoning
        self.answer = answer
        self.tool_value = tool_value
        self.tool_rounds = tool_rounds
        self.delay = delay
        self.max_queue = max_queue
        self._tok = FakeTokenizer()
        self._context = context_length
        self._history: list[list[int]] = []
        self._scripts: dict[str, list[int]] = {}
        """Each reply's tokens, encoded once (a reply is one of three texts)."""
        self.stats = FakeStats()

    @property
    def tokenizer(self) -> FakeTokenizer:
        return self._tok

    @property
    def context_length(self) -> int:
        return self._context

    def submit(self, request: EngineRequest) -> FakeSequence:
        if self.stats.active >= self.max_queue:
            raise Overloaded("The engine queue is full; retry later.")
        self.stats.submitted += 1
        prompt = list(request.prompt)
        cached = max((_common(prompt, old) for old in self._history), default=0)
        self._history.append(prompt)
        # Like an engine's idle slots: only the last few sequences stay cached.
        del self._history[:-8]
        self.stats.prompts.append(prompt)
        del self.stats.prompts[:-8]
        self.stats.prompt_tokens_evaluated += len(prompt) - cached
        thinking_off = self._tok.decode(prompt[-4:]).endswith("</think>\n\n")
        opened = self._tok.decode(prompt[-3:]).rstrip().endswith("<think>")
        answer = self._tool_call(self._tok.decode(prompt)) or self.answer
        if thinking_off:
            reply = f"{answer}<|im_end|>"
        elif opened:
            reply = f"{self.reasoning}\n</think>\n\n{answer}<|im_end|>"
        else:
            reply = f"<think>\n{self.reasoning}\n</think>\n\n{answer}<|im_end|>"
        script = self._scripts.get(reply)
        if script is None:
            script = self._scripts[reply] = self._tok.encode(reply)
        return FakeSequence(self, request, script, cached)

    def _tool_call(self, prompt: str) -> str | None:
        """A call of the best-matching offered tool, unless ``tool_rounds`` tool results already
        followed the question."""
        tools = re.search(r"<tools>\n(.*?)\n</tools>", prompt, re.DOTALL)
        if tools is None:
            return None
        results, question = _since_question(prompt)
        if results >= self.tool_rounds:
            return None
        functions = [json.loads(line)["function"] for line in tools.group(1).split("\n")]
        asked = _words(question)
        function = max(
            functions, key=lambda f: len(asked & _words(f["name"] + " " + f.get("description", "")))
        )
        schema = function.get("parameters", {})
        properties = schema.get("properties", {})
        arguments = {
            k: " ".join(question.split()) if k == "query" else self.tool_value
            for k in schema.get("required", ())
            if properties.get(k, {}).get("type") == "string"
        }
        call = {"name": function["name"], "arguments": arguments}
        return f"<tool_call>\n{json.dumps(call, ensure_ascii=False)}\n</tool_call>"

    def health(self) -> Health:
        return Health("up", "scripted")

    def snapshot(self) -> EngineStats:
        return EngineStats(active_sequences=self.stats.active, sampled_tokens=self.stats.sampled_tokens)

    async def aclose(self) -> None:
        return None


def _since_question(prompt: str) -> tuple[int, str]:
    """The tool results after the prompt's last question (a user turn that is not a tool's
    result), and that question's text ("" when there is none)."""
    results = 0
    for turn in reversed(prompt.split("<|im_start|>")[1:-1]):
        if turn.startswith("user\n<tool_response>"):
            results += 1
        elif turn.startswith("user\n"):
            return results, turn.removeprefix("user\n").removesuffix("\n").removesuffix("<|im_end|>")
    return results, ""


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+|[^\x00-\x7f]", text.lower().replace("_", " ")))


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return min(n, len(a) - 1)
