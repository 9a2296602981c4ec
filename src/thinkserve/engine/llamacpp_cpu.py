"""Which of llama.cpp's CPU kernels this process runs, chosen for the CPU it lands on (imports
core; llama_cpp's shared libraries through ctypes).

thinkserve builds llama.cpp portably (``GGML_NATIVE=OFF``, ``GGML_BACKEND_DL=ON``,
``GGML_CPU_ALL_VARIANTS=ON``): ``llama_cpp/lib`` then holds one CPU backend per instruction-set
level (``libggml-cpu-haswell.so``, ``libggml-cpu-zen4.so``, ``libggml-cpu-sapphirerapids.so``, ...),
each exporting ``ggml_backend_score()``, which is 0 where the running CPU lacks one of its features.
``load_cpu_backend`` loads the best-scoring variant itself, before ``llama_backend_init`` would
(llama.cpp's own search looks next to the Python executable and in the working directory, where
the variants are not).

AMX is the exception. ggml's AMX kernels (the ``sapphirerapids`` variant's extra buffer type) have
killed the whole process with SIGILL on Xeons that advertise ``amx_tile amx_int8``. So a backend
that carries AMX kernels is used only when AMX is *proven* on this CPU, build and model
(``engine.llamacpp_probe``), or when the operator says ``amx = "on"``; otherwise the best variant
without AMX is loaded. A build without variants (a user's own ``-march=native`` wheel) has one
built-in backend: if that one carries AMX and AMX is not allowed, llama.cpp's extra buffer types
are turned off (``use_extra_bufts=False``), which is the only way to keep its AMX kernels unused.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("thinkserve.engine.llamacpp")

AmxPolicy = Literal["auto", "on", "off"]
"""``auto``: AMX only where the probe proved it; ``on``: the operator vouches for it; ``off``: never."""

_AMX_FEATURES = ("AMX_INT8", "AMX_TILE", "AMX_BF16", "AMX_FP16")
_VARIANT_PREFIX = "libggml-cpu-"


class _Feature(ctypes.Structure):
    _fields_ = (("name", ctypes.c_char_p), ("value", ctypes.c_char_p))


_GetFeatures = ctypes.CFUNCTYPE(ctypes.POINTER(_Feature), ctypes.c_void_p)


@dataclass(frozen=True, slots=True)
class Variant:
    """One CPU backend library of a portable build and its score on this CPU (0: unusable)."""

    name: str
    """``zen4``, ``sapphirerapids``, ... (the file name without prefix and extension)."""
    path: Path
    score: int


@dataclass(frozen=True, slots=True)
class CpuBackend:
    """The CPU backend a process runs, as ggml reports it."""

    variant: str
    """The variant's name, or ``built-in`` for a build without variants."""
    features: tuple[str, ...]
    """ggml's feature flags whose value is "1", e.g. ``("AVX2", "AVX512", "REPACK")``."""
    extra_bufts: bool
    """Whether llama.cpp may place weights in the backend's extra buffer types (repacked
    layouts; AMX tiles where the backend has AMX kernels)."""
    amx_allowed: bool
    reason: str
    """Why this backend, in words (shown in /health and the startup log)."""

    @property
    def amx_kernels(self) -> bool:
        """The loaded backend carries AMX kernels."""
        return any(f in self.features for f in _AMX_FEATURES)

    @property
    def uses_amx(self) -> bool:
        """AMX kernels can run: the backend has them and its extra buffer types are on."""
        return self.amx_kernels and self.extra_bufts


def library_dir() -> Path:
    """``llama_cpp/lib``: where llama-cpp-python keeps libllama, libggml and the CPU variants."""
    import llama_cpp

    return Path(llama_cpp.__file__).parent / "lib"


def _ggml(lib_dir: Path) -> ctypes.CDLL:
    """The libggml that libllama itself uses.

    Wheels hold copies, not links (``libggml.so``, ``libggml.so.0``, ``libggml.so.0.25.3``), and
    opening another copy by its path would load a second ggml with a registry of its own. Opening
    the SONAME without a path returns the copy already loaded (``import llama_cpp`` loaded it).
    """
    sonames = sorted(
        p.name for p in lib_dir.glob("libggml.so.*") if re.fullmatch(r"libggml\.so\.\d+", p.name)
    )
    if not sonames:
        raise FileNotFoundError(f"no libggml in {lib_dir}")
    try:
        lib = ctypes.CDLL(sonames[0])
    except OSError:
        lib = ctypes.CDLL(str(lib_dir / sonames[0]))
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get.argtypes = (ctypes.c_size_t,)
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = (ctypes.c_void_p,)
    lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get_proc_address.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = (ctypes.c_char_p,)
    lib.ggml_backend_unload.restype = None
    lib.ggml_backend_unload.argtypes = (ctypes.c_void_p,)
    return lib


def variants(lib_dir: Path) -> list[Variant]:
    """The CPU variants of a portable build with their scores here, best first ([] otherwise)."""
    found = []
    for path in sorted(lib_dir.glob(f"{_VARIANT_PREFIX}*.so")):
        name = path.name[len(_VARIANT_PREFIX) : -len(".so")]
        found.append(Variant(name, path, _score(path)))
    return sorted(found, key=lambda v: -v.score)


def _score(path: Path) -> int:
    """What ggml's own loader asks each variant: its score on this CPU (no kernel runs)."""
    try:
        lib = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
    except OSError as exc:
        log.debug("cannot open %s: %s", path, exc)
        return 0
    score = getattr(lib, "ggml_backend_score", None)
    if score is None:
        return 0
    score.restype = ctypes.c_int
    return int(score())


def _cpu_reg(ggml: ctypes.CDLL) -> int | None:
    for i in range(int(ggml.ggml_backend_reg_count())):
        reg = ggml.ggml_backend_reg_get(i)
        if reg and (ggml.ggml_backend_reg_name(reg) or b"").upper() == b"CPU":
            return int(reg)
    return None


def _features(ggml: ctypes.CDLL, reg: int) -> tuple[str, ...]:
    address = ggml.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
    if not address:
        return ()
    table = _GetFeatures(address)(reg)
    names = []
    i = 0
    while table[i].name:
        if (table[i].value or b"") == b"1":
            names.append(table[i].name.decode())
        i += 1
    return tuple(names)


def decide_amx(policy: AmxPolicy, proof: bool | None) -> tuple[bool, str]:
    """Whether AMX kernels may run, and why. ``proof``: the probe's verdict, None if not run."""
    if policy == "off":
        return False, "AMX off by configuration"
    if policy == "on":
        return True, "AMX on by configuration"
    if proof is True:
        return True, "AMX proven on this CPU, build and model"
    if proof is False:
        return False, "AMX failed its probe here"
    return False, "AMX not proven here"


def load_cpu_backend(policy: AmxPolicy = "auto", proof: bool | None = None) -> CpuBackend:
    """Load (once per process) the best CPU backend that may run here; see the module docstring.

    Call before ``llama_backend_init``; a later call reports the backend already loaded.
    """
    lib_dir = library_dir()  # imports llama_cpp, which loads libllama and its libggml
    ggml = _ggml(lib_dir)
    allowed, why = decide_amx(policy, proof)
    reg = _cpu_reg(ggml)
    if reg is not None:
        return _describe(ggml, reg, _variant_of(ggml, reg), allowed, why)
    for variant in variants(lib_dir):
        if variant.score <= 0:
            continue
        reg = ggml.ggml_backend_load(str(variant.path).encode())
        if not reg:
            log.warning("cannot load the CPU backend %s", variant.path)
            continue
        if any(f in _features(ggml, reg) for f in _AMX_FEATURES) and not allowed:
            log.info("skipping the %s CPU backend: it carries AMX kernels and %s", variant.name, why)
            ggml.ggml_backend_unload(reg)
            continue
        return _describe(ggml, int(reg), variant.name, allowed, why)
    raise RuntimeError(f"no CPU backend of llama.cpp in {lib_dir} can run on this CPU")


class _DlInfo(ctypes.Structure):
    _fields_ = (
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    )


def _variant_of(ggml: ctypes.CDLL, reg: int) -> str:
    """The variant an already registered CPU backend came from: the file holding its code."""
    address = ggml.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
    info = _DlInfo()
    libc = ctypes.CDLL(None)
    if not address or not libc.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return "built-in"
    name = Path(info.dli_fname.decode()).name
    if name.startswith(_VARIANT_PREFIX):
        return name[len(_VARIANT_PREFIX) :].split(".so")[0]
    return "built-in"


def _describe(ggml: ctypes.CDLL, reg: int, variant: str, allowed: bool, why: str) -> CpuBackend:
    features = _features(ggml, reg)
    amx = any(f in features for f in _AMX_FEATURES)
    # Extra buffer types are where AMX kernels live; elsewhere they only hold repacked weights.
    extra = allowed or not amx
    if amx and not allowed:
        reason = f"{variant} backend with AMX kernels kept unused ({why}): extra buffer types off"
    elif amx:
        reason = f"{variant} backend with AMX ({why})"
    else:
        reason = f"{variant} backend without AMX ({why})" if "AMX" in why else f"{variant} backend"
    return CpuBackend(variant, features, extra, allowed, reason)
