"""The CPU backend llama.cpp runs on: a portable build, the best variant for this CPU, and AMX
kernels only where a probe proved them (they have killed the server with SIGILL on Xeons)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.conftest import engine_model
from thinkserve.engine.llamacpp import LlamaCppEngine
from thinkserve.engine.llamacpp_cpu import decide_amx, library_dir, variants
from thinkserve.engine.llamacpp_probe import Proof, cpu_has_amx, prove_amx

slow = pytest.mark.slow


def test_amx_needs_proof_or_an_operator() -> None:
    assert decide_amx("auto", None) == (False, "AMX not proven here")
    assert decide_amx("auto", False)[0] is False
    assert decide_amx("auto", True)[0] is True
    assert decide_amx("off", True)[0] is False
    assert decide_amx("on", None)[0] is True


def test_the_installed_llama_cpp_is_portable() -> None:
    """`make install` builds every CPU variant; a -march=native wheel would have none."""
    found = variants(library_dir())
    names = {v.name for v in found}
    assert len(found) >= 2, f"llama.cpp was built for one CPU only ({library_dir()})"
    assert any(v.score > 0 for v in found), "no CPU variant can run on this CPU"
    if sys.platform == "linux" and "x64" in names:
        assert {"x64", "haswell", "sapphirerapids"} <= names


@slow
def test_the_engine_never_runs_amx_kernels_without_proof(tmp_path: Path) -> None:
    """Whatever the machine: AMX kernels in use imply a passed probe for this CPU, build and model."""
    model = engine_model()
    engine = LlamaCppEngine(str(model), n_ctx=512, n_seq=1, proof_dir=tmp_path)
    engine.start()
    try:
        backend = engine.backend
        assert backend is not None
        tokens = engine.tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    finally:
        engine.close()
    proofs = tmp_path / "amx-proof.json"
    if cpu_has_amx():
        # The probe ran (or its verdict was kept) before the engine chose a backend.
        verdicts = [entry["verdict"] for entry in json.loads(proofs.read_text()).values()]
        assert len(verdicts) == 1
        assert backend.amx_allowed == (verdicts[0] is True)
    else:
        assert not proofs.exists()
    if backend.uses_amx:
        assert backend.amx_allowed, backend
    else:
        # The best variant without AMX kernels (or, for a build without variants, extra
        # buffer types off) is what runs.
        assert not backend.amx_kernels or not backend.extra_bufts
    assert tokens


@slow
def test_the_probe_keeps_its_verdict(tmp_path: Path) -> None:
    model = str(engine_model())
    first = prove_amx(model, tmp_path)
    assert isinstance(first, Proof)
    if not cpu_has_amx():
        # Nothing to prove where the CPU has no AMX: the AMX child finds no AMX kernels.
        assert first.verdict is None
    kept = json.loads((tmp_path / "amx-proof.json").read_text())
    assert [entry["verdict"] for entry in kept.values()] == [first.verdict]
    assert prove_amx(model, tmp_path) == first


@slow
def test_the_probe_child_reports_the_backend_it_ran() -> None:
    model = str(engine_model())
    done = subprocess.run(
        [sys.executable, "-m", "thinkserve.engine.llamacpp_probe", model, "--amx", "off"],
        capture_output=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert result["amx"] is False
    assert len(result["tokens"]) == 8
    assert result["variant"] in {v.name for v in variants(library_dir())} | {"built-in"}
