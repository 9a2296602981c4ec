"""The vLLM engine's parts that need no vLLM: the sequence driver (requests in a row around a
checkpoint), the adapter of vLLM's outputs, the settings and ``--vllm``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

from thinkserve.cli import build_parser
from thinkserve.config import load_settings
from thinkserve.core.errors import ConfigError, EngineFailure
from thinkserve.core.types import SamplingParams
from thinkserve.engine.protocol import (
    Checkpoint,
    EngineEvent,
    EngineFinished,
    EngineRequest,
    Paused,
    TokenEvent,
)
from thinkserve.engine.registry import model_file, settings_from_table
from thinkserve.engine.vllm.engine import _step
from thinkserve.engine.vllm.sequence import Counters, Step, VllmSequence
from thinkserve.engine.vllm.settings import CPU_KV_CACHE_BYTES, VllmSettings

T = TypeVar("T")
END_THINK = 99
PROMPT = [100, 101]


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(factory(), 10)

    return asyncio.run(bounded())


class Pieces:
    def piece(self, token: int) -> bytes:
        return f"<{token}>".encode()


@dataclass
class Call:
    tokens: list[int]
    max_tokens: int
    request_id: str


@dataclass
class ScriptedVllm:
    """Answers each request with the next scripted list of steps, and records the request."""

    replies: list[list[Step]]
    calls: list[Call] = field(default_factory=list)
    aborted: int = 0
    hang: bool = False

    async def generate(
        self, tokens: list[int], max_tokens: int, request_id: str, request: EngineRequest
    ) -> AsyncIterator[Step]:
        self.calls.append(Call(list(tokens), max_tokens, request_id))
        steps = self.replies.pop(0)
        try:
            for step in steps:
                await asyncio.sleep(0)
                yield step
            if self.hang:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.aborted += 1
            raise


def sequence(
    vllm: ScriptedVllm,
    max_tokens: int,
    checkpoint: Checkpoint | None = None,
    *,
    context: int = 1000,
    counters: Counters | None = None,
) -> VllmSequence:
    request = EngineRequest("r", PROMPT, SamplingParams(temperature=0.0), max_tokens, checkpoint)
    return VllmSequence(request, vllm.generate, Pieces(), context, counters or Counters())


async def drain(seq: VllmSequence, inject: list[int]) -> list[EngineEvent]:
    events: list[EngineEvent] = []
    while not events or not isinstance(events[-1], EngineFinished):
        async for event in seq:
            events.append(event)
            if isinstance(event, Paused):
                seq.resume(inject)
    return events


def sampled(events: list[EngineEvent]) -> list[int]:
    return [e.token for e in events if isinstance(e, TokenEvent) and not e.injected]


def test_budget_pauses_at_the_limit_and_resumes_with_a_new_request_over_the_same_tokens() -> None:
    vllm = ScriptedVllm([[Step([1, 2], 7), Step([3], 7, "length")], [Step([4, 5], 0, "stop")]])
    events = run(lambda: drain(sequence(vllm, 10, Checkpoint(limit=3, until_token=END_THINK)), [50, 51]))
    assert [(c.tokens, c.max_tokens) for c in vllm.calls] == [
        (PROMPT, 3),
        ([*PROMPT, 1, 2, 3, 50, 51], 7),
    ]
    assert vllm.calls[0].request_id != vllm.calls[1].request_id
    kinds = [type(e).__name__ + ("*" if isinstance(e, TokenEvent) and e.injected else "") for e in events]
    tok, injected = "TokenEvent", "TokenEvent*"
    assert kinds == [tok, tok, tok, "Paused", injected, injected, tok, tok, "EngineFinished"]
    assert events[3] == Paused(at_end=False)
    # cached_tokens is the first request's: the prompt's hit, not the resume's
    assert events[-1] == EngineFinished("stop", len(PROMPT), 7, 5)
    assert sampled(events) == [1, 2, 3, 4, 5]


def test_a_marker_before_the_limit_disarms_and_the_cut_request_continues_without_a_pause() -> None:
    vllm = ScriptedVllm([[Step([1, END_THINK, 2, 3, 4], 0, "length")], [Step([6], 0, "stop")]])
    events = run(lambda: drain(sequence(vllm, 10, Checkpoint(limit=5, until_token=END_THINK)), [50]))
    assert not any(isinstance(e, Paused) for e in events)
    assert [(len(c.tokens), c.max_tokens) for c in vllm.calls] == [(2, 5), (7, 5)]
    assert events[-1] == EngineFinished("stop", 2, 0, 6)


def test_a_text_marker_split_over_tokens_disarms_too() -> None:
    # Pieces renders token t as "<t>": "<7><8>" holds the marker "7><8" across two tokens.
    vllm = ScriptedVllm([[Step([7, 8, 9], 0, "length")], [Step([], 0, "stop")]])
    events = run(lambda: drain(sequence(vllm, 10, Checkpoint(limit=3, until_text="7><8")), [50]))
    assert not any(isinstance(e, Paused) for e in events)


def test_an_end_token_while_armed_pauses_when_asked_to() -> None:
    vllm = ScriptedVllm([[Step([1, 2], 0, "stop")], [Step([3], 0, "stop")]])
    checkpoint = Checkpoint(limit=5, until_token=END_THINK, on_end=True)
    events = run(lambda: drain(sequence(vllm, 10, checkpoint), [END_THINK]))
    assert Paused(at_end=True) in events
    assert vllm.calls[1].tokens == [*PROMPT, 1, 2, END_THINK]
    assert vllm.calls[1].max_tokens == 8
    assert events[-1] == EngineFinished("stop", 2, 0, 3)


def test_max_tokens_ends_with_length_after_one_request() -> None:
    vllm = ScriptedVllm([[Step([1, 2, 3], 0, "length")]])
    events = run(lambda: drain(sequence(vllm, 3), []))
    assert events[-1] == EngineFinished("length", 2, 0, 3)
    assert len(vllm.calls) == 1


def test_a_zero_limit_pauses_before_the_first_request() -> None:
    vllm = ScriptedVllm([[Step([5], 0, "stop")]])
    events = run(lambda: drain(sequence(vllm, 4, Checkpoint(limit=0, until_token=END_THINK)), [50]))
    assert isinstance(events[0], Paused)
    assert vllm.calls[0].tokens == [*PROMPT, 50]


def test_the_context_caps_each_request_and_ends_the_sequence() -> None:
    vllm = ScriptedVllm([[Step([1, 2], 0, "length")]])
    events = run(lambda: drain(sequence(vllm, 50, context=4), []))
    assert vllm.calls[0].max_tokens == 2
    assert events[-1] == EngineFinished("length", 2, 0, 2)


def test_cancel_aborts_the_running_request() -> None:
    counters = Counters()
    vllm = ScriptedVllm([[Step([1], 0)]], hang=True)

    async def body() -> None:
        seq = sequence(vllm, 10, counters=counters)
        async for event in seq:
            assert isinstance(event, TokenEvent)
            seq.cancel()
        for _ in range(5):
            await asyncio.sleep(0)

    run(body)
    assert vllm.aborted == 1
    assert counters.active == 0


def test_an_engine_error_reaches_the_consumer_as_engine_failure() -> None:
    async def broken(tokens: list[int], max_tokens: int, rid: str, req: EngineRequest) -> AsyncIterator[Step]:
        yield Step([1], 0)
        raise RuntimeError("engine core died")

    async def body() -> list[EngineEvent]:
        request = EngineRequest("r", PROMPT, SamplingParams(), 5)
        seq = VllmSequence(request, broken, Pieces(), 100, Counters())
        return [e async for e in seq]

    with pytest.raises(EngineFailure):
        run(body)


def _output(tokens: list[int], *, finished: bool, reason: str | None = None, stop: Any = None) -> Any:
    completion = SimpleNamespace(token_ids=tokens, finish_reason=reason, stop_reason=stop)
    return SimpleNamespace(outputs=[completion], finished=finished, num_cached_tokens=128)


def test_vllm_outputs_become_steps_without_the_end_token() -> None:
    assert _step(_output([1, 2], finished=False)) == Step([1, 2], 128)
    # vLLM keeps the EOS (stop_reason None) or stop token (its id) in token_ids: dropped
    assert _step(_output([3, 151645], finished=True, reason="stop")) == Step([3], 128, "stop")
    assert _step(_output([151643], finished=True, reason="stop", stop=151643)) == Step([], 128, "stop")
    assert _step(_output([4], finished=True, reason="length")) == Step([4], 128, "length")
    with pytest.raises(EngineFailure):
        _step(_output([], finished=True, reason="abort"))


# -- settings --------------------------------------------------------------------------------------


def test_engine_args_pass_vllm_settings_through_and_keep_prefix_caching_on() -> None:
    settings = settings_from_table(
        "big",
        {
            "kind": "vllm",
            "model": "/m",
            "tensor_parallel_size": 4,
            "pipeline_parallel_size": 2,
            "distributed_executor_backend": "ray",
            "engine_args": {"data_parallel_size": 2, "swap_space": 8},
        },
    )
    assert isinstance(settings, VllmSettings)
    kwargs = settings.engine_kwargs("/m", cpu=False)
    assert kwargs["enable_prefix_caching"] is True
    assert (kwargs["tensor_parallel_size"], kwargs["pipeline_parallel_size"]) == (4, 2)
    assert kwargs["distributed_executor_backend"] == "ray"
    assert (kwargs["data_parallel_size"], kwargs["swap_space"]) == (2, 8)
    assert "kv_cache_memory_bytes" not in kwargs and "max_queue" not in kwargs
    assert VllmSettings("d").engine_kwargs("/m", cpu=True)["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES
    assert "kv_cache_memory_bytes" not in VllmSettings("d", gpu_memory_utilization=0.5).engine_kwargs(
        "/m", cpu=True
    )


def test_bad_vllm_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        settings_from_table("x", {"kind": "vllm", "distributed_executor_backend": "slurm"})
    with pytest.raises(ConfigError):
        settings_from_table("x", {"kind": "vllm", "tensor_parallel_size": "4"})
    with pytest.raises(ConfigError, match="model directory"):
        model_file(VllmSettings("x"), Path("."))
    with pytest.raises(ConfigError, match=r"no config\.json"):
        model_file(VllmSettings("x", model="tests"), Path("."))


def test_the_vllm_flag_serves_every_name_with_that_directory(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[engines.default]\nkind = "vllm"\nenforce_eager = true\n')
    args = build_parser().parse_args(["serve", "--vllm", "/models/q", "--config", str(config)])
    settings = load_settings(args.config, vllm=args.vllm)
    engine = settings.engines["default"]
    assert isinstance(engine, VllmSettings)
    assert (engine.model, engine.enforce_eager) == ("/models/q", True)
    assert set(settings.engines) == {"default"}
    assert {spec.engine for spec in settings.models.values()} == {"default"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--vllm", "/a", "--model", "/b.gguf"])
