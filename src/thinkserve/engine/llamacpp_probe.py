"""The AMX probe: proof that ggml's AMX kernels work on this CPU, build and model, or that they
do not (imports engine.llamacpp_cpu; llama_cpp in the probe process only).

AMX kernels have killed llama.cpp processes with SIGILL (tile-data permission and tile config,
llama.cpp PR 26954), so they are never tried in the serving process. ``prove_amx`` runs two
short-lived child processes on the served model instead: one with AMX allowed, one without, each
evaluating the same prompt and decoding a few greedy tokens. AMX is proven when the AMX child
exits cleanly and agrees with the other (same greedy tokens). A child killed by a signal, or an
answer that differs, is a failed proof. The verdict is kept in ``amx-proof.json`` in the data
directory, keyed by the CPU, the llama.cpp build and the model file, so it is made once.

Run by hand: ``python -m thinkserve.engine.llamacpp_probe MODEL.gguf --amx on`` prints one JSON line::

    {"variant": "sapphirerapids", "amx": true, "tokens": [785, 3974, 13, ...]}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkserve.core.paths import default_data_dir
from thinkserve.engine.llamacpp_cpu import AmxPolicy, CpuBackend, library_dir, load_cpu_backend

log = logging.getLogger("thinkserve.engine.llamacpp")

_PROMPT = "The quick brown fox jumps over the lazy dog. Count to ten: one, two, three,"
_TOKENS = 8
_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class Proof:
    """The probe's verdict: True (AMX works), False (it failed), None (no AMX kernels to prove)."""

    verdict: bool | None
    detail: str


def choose_backend(model_path: str, policy: AmxPolicy, proof_dir: Path | None) -> CpuBackend:
    """Load this process's CPU backend; with ``auto``, AMX only after a passed probe."""
    proof: bool | None = None
    if policy == "auto" and cpu_has_amx():
        found = prove_amx(model_path, proof_dir if proof_dir is not None else default_data_dir())
        proof = found.verdict
    return load_cpu_backend(policy, proof)


def cpu_has_amx() -> bool:
    """Whether the CPU and kernel offer AMX tiles (without them no AMX kernel can be chosen)."""
    flags = _cpu_identity().split()
    return "amx_tile" in flags


def prove_amx(model_path: str, cache_dir: Path | None) -> Proof:
    """The cached verdict for this CPU, build and model, probing first if there is none."""
    key = _key(model_path)
    cache = cache_dir / "amx-proof.json" if cache_dir is not None else None
    known = _read(cache)
    if key in known:
        entry = known[key]
        return Proof(entry.get("verdict"), str(entry.get("detail", "")))
    proof = _probe(model_path)
    log.info("AMX probe on %s: %s", Path(model_path).name, proof.detail)
    if cache is not None:
        known[key] = {"verdict": proof.verdict, "detail": proof.detail}
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(known, indent=1), "utf-8")
            tmp.replace(cache)
        except OSError as exc:
            log.warning("cannot keep the AMX proof in %s: %s", cache, exc)
    return proof


def _probe(model_path: str) -> Proof:
    amx = _child(model_path, "on")
    if isinstance(amx, str):
        return Proof(False, amx)
    if not amx["amx"]:
        return Proof(None, f"the {amx['variant']} backend has no AMX kernels")
    plain = _child(model_path, "off")
    if isinstance(plain, str):
        # Without AMX the reference failed too: nothing is proven either way.
        return Proof(False, f"the reference run failed: {plain}")
    if amx["tokens"] != plain["tokens"]:
        return Proof(False, f"AMX kernels decoded {amx['tokens']}, without AMX {plain['tokens']}")
    return Proof(True, f"AMX kernels ({amx['variant']}) decoded the same {_TOKENS} tokens")


def _child(model_path: str, amx: str) -> dict[str, Any] | str:
    """The probe's JSON result, or why it has none."""
    command = [sys.executable, "-m", "thinkserve.engine.llamacpp_probe", model_path, "--amx", amx]
    try:
        done = subprocess.run(command, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"the probe with AMX {amx} did not finish in {_TIMEOUT_S:.0f} s"
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return f"the probe with AMX {amx} was killed by {name}"
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        return f"the probe with AMX {amx} exited with {done.returncode}: {' '.join(tail)}"
    try:
        result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"the probe with AMX {amx} printed no result"
    return result


def _key(model_path: str) -> str:
    """CPU model and flags, the llama.cpp libraries (names, sizes, times) and the model file."""
    parts = [_cpu_identity()]
    lib = library_dir()
    for path in sorted(lib.glob("*.so*")):
        stat = path.stat()
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    model = Path(model_path).resolve()
    stat = model.stat()
    parts.append(f"{model}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _cpu_identity() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text("utf-8", "replace")
    except OSError:
        return os.uname().machine
    lines = text.split("\n\n", 1)[0].splitlines()
    keep = ("vendor_id", "model name", "cpu family", "model", "stepping", "flags", "microcode")
    return "\n".join(line for line in lines if line.split(":", 1)[0].strip() in keep)


def _read(cache: Path | None) -> dict[str, dict[str, Any]]:
    if cache is None or not cache.is_file():
        return {}
    try:
        data = json.loads(cache.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- the probe process ------------------------------------------------------------------------


def _run_probe(
    model_path: str, amx: str, n_tokens: int = _TOKENS, threads: int | None = None
) -> dict[str, Any]:
    """Load the model with or without AMX, evaluate a prompt, decode greedily (probe child).

    Also reports the decode speed (tokens after the first, per second): ``bench/cpu_build.py``
    runs this with several llama.cpp builds to compare them.
    """
    import llama_cpp

    backend = load_cpu_backend("on" if amx == "on" else "off")
    result: dict[str, Any] = {"variant": backend.variant, "amx": backend.uses_amx, "tokens": []}
    if amx == "on" and not backend.uses_amx:
        return result
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    mparams.use_extra_bufts = backend.extra_bufts
    model = llama_cpp.llama_model_load_from_file(model_path.encode(), mparams)
    if not model:
        raise RuntimeError(f"cannot load {model_path}")
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = 64 + n_tokens + 64
    cparams.n_batch = 64
    if threads is not None:
        cparams.n_threads = cparams.n_threads_batch = threads
    # As the engine runs on CPUs (see engine.llamacpp): the same kernels are the ones proven.
    cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    vocab = llama_cpp.llama_model_get_vocab(model)
    text = _PROMPT.encode()
    buf = (llama_cpp.llama_token * 128)()
    n = llama_cpp.llama_tokenize(vocab, text, len(text), buf, 128, True, False)
    tokens = list(buf[:n])
    sampler = llama_cpp.llama_sampler_init_greedy()
    pending = (llama_cpp.llama_token * len(tokens))(*tokens)  # the batch only points at it
    times: list[float] = []
    for _ in range(n_tokens):
        batch = llama_cpp.llama_batch_get_one(pending, len(pending))
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        token = int(llama_cpp.llama_sampler_sample(sampler, ctx, -1))
        times.append(time.perf_counter())
        result["tokens"].append(token)
        pending = (llama_cpp.llama_token * 1)(token)
    if len(times) > 1:
        result["decode_tok_s"] = (len(times) - 1) / (times[-1] - times[0])
    llama_cpp.llama_sampler_free(sampler)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Probe llama.cpp's AMX kernels on a model file.")
    parser.add_argument("model")
    parser.add_argument("--amx", choices=("on", "off"), default="on")
    parser.add_argument("--tokens", type=int, default=_TOKENS)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(_run_probe(args.model, args.amx, args.tokens, args.threads)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
