"""``thinkserve pull``, ``thinkserve models``, ``thinkserve rm`` and ``serve --pull`` (imports hub, config).

Exit status: 0 done, 1 the hub failed (unreachable, hash mismatch, no space), 2 a wrong name or
reference, 130 interrupted (Ctrl-C; the partial file is kept for the next pull).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from thinkserve.catalogue.sources import Source, load_sources
from thinkserve.catalogue.spec import load_catalogue
from thinkserve.config import Settings
from thinkserve.core.paths import default_data_dir
from thinkserve.hub.disk import human_size
from thinkserve.hub.manifest import Entry, Manifest
from thinkserve.hub.progress import RichReporter
from thinkserve.hub.puller import hub_for, pull_name, pull_reference, pull_repo, quant_of, record
from thinkserve.hub.reference import HUBS, HubName, Reference, ReferenceError, is_reference
from thinkserve.hub.remote import HubError, HubUnreachable, NotOnHub
from thinkserve.hub.serving import cached_file, resolve_references, with_pulled

log = logging.getLogger("thinkserve")

COMMERCIAL = """{name} is a commercial Model Studio model: it has no open weights to pull.
To answer {name} with open weights, pull one and map the name to it in the config, e.g.:

    thinkserve pull qwen3-8b

    # thinkserve.toml
    [engines.qwen3]
    model = "hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf"

    [models."{name}"]
    engine = "qwen3"
"""


def register(sub: Any, *, serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--pull",
        action="store_true",
        help="pull the hf:// and modelscope:// files the config names and lacks",
    )
    p = sub.add_parser("pull", help="download a model's weights from Hugging Face or ModelScope")
    p.add_argument(
        "target", help="a catalogue name (qwen3-8b), or hf://ORG/REPO/FILE, modelscope://ORG/REPO/FILE"
    )
    p.add_argument(
        "--quant", default=None, help="quantization for a name, e.g. Q8_0 (default: the catalogue's)"
    )
    p.add_argument(
        "--hub", choices=HUBS, default=None, help="for a name: hf (default) or modelscope ($THINKSERVE_HUB)"
    )
    p.add_argument(
        "--safetensors",
        action="store_true",
        help="for a name: the original safetensors repo, whole (for engines that load a Hugging Face folder)",
    )
    p.add_argument(
        "--as", dest="names", action="append", default=[], help="also serve this name with the file"
    )
    p.set_defaults(func=pull)
    m = sub.add_parser("models", help="list pulled models: names served, source, quantization, size, file")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=models)
    r = sub.add_parser("rm", help="delete a pulled model from the hub cache (by name or reference)")
    r.add_argument("target")
    r.set_defaults(func=remove)


def prepare_serve(settings: Settings, args: argparse.Namespace) -> Settings:
    """Hub references to cached files (pulling with ``--pull``), then pulled names to their files."""
    settings = resolve_references(settings, pull=bool(getattr(args, "pull", False)), reporter=RichReporter)
    if getattr(args, "model", None) is None:
        settings = with_pulled(settings)
    return settings


def _data_dir() -> Path:
    return default_data_dir()


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def pull(args: argparse.Namespace) -> int:
    target: str = args.target
    try:
        if not is_reference(target) and target not in load_sources():
            if target in load_catalogue():
                sys.stderr.write(COMMERCIAL.format(name=target))
                return 2
            return _fail(
                f"{target!r} is neither an open-weight name ({', '.join(sorted(load_sources()))}) "
                "nor a reference (hf://ORG/REPO/FILE, modelscope://ORG/REPO/FILE)",
                2,
            )
        if args.safetensors:
            return _pull_safetensors(target, args)
        entry, path = _pull(target, args)
    except ReferenceError as exc:
        return _fail(str(exc), 2)
    except NotOnHub as exc:
        return _fail(str(exc), 2)
    except HubUnreachable as exc:
        cached = _already_pulled(target)
        if cached is None:
            return _fail(str(exc), 1)
        sys.stderr.write(f"warning: {exc}\nThe cached copy was not checked for a newer version.\n")
        entry, path = cached
    except HubError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted: the partial download is kept; run the same pull again to resume", 130)
    served = f", serves {', '.join(entry.names)}" if entry.names else ""
    sys.stdout.write(f"pulled {entry.reference} ({human_size(entry.size)}{served})\n{path}\n")
    return 0


def _pull(target: str, args: argparse.Namespace) -> tuple[Entry, Path]:
    manifest = Manifest(_data_dir())
    if is_reference(target):
        ref = Reference.parse(target)
        with RichReporter() as reporter:
            pulled = pull_reference(hub_for(ref.hub), ref, reporter)
        return record(manifest, pulled, list(args.names), None), pulled.paths[0]
    hub_name: HubName = args.hub or _env_hub()
    with RichReporter() as reporter:
        source = load_sources()[target]
        pulled, quant = pull_name(target, source, hub_for(hub_name), reporter, quant=args.quant)
    return record(manifest, pulled, [target, *args.names], quant), pulled.paths[0]


def _pull_safetensors(target: str, args: argparse.Namespace) -> int:
    """The whole original repo into the hub's cache; prints its folder (not served by llama.cpp)."""
    hub_name: HubName = args.hub or _env_hub()
    repo = load_sources().get(target, Source(target)).safetensors.get(hub_name)
    if repo is None:
        return _fail(f"{target!r} has no safetensors repo on {hub_name} in the catalogue", 2)
    with RichReporter() as reporter:
        folder = pull_repo(hub_for(hub_name), repo, reporter)
    sys.stdout.write(f"pulled {hub_name}://{repo}\n{folder}\n")
    return 0


def _already_pulled(target: str) -> tuple[Entry, Path] | None:
    """A pull that the cache already satisfies (the hub being unreachable, it cannot say more)."""
    for entry in Manifest(_data_dir()).find(target):
        ref = Reference.parse(entry.reference)
        path = cached_file(ref, hub_for(ref.hub))
        if path is not None:
            return entry, path
    return None


def _env_hub() -> HubName:
    value = os.environ.get("THINKSERVE_HUB", "hf")
    if value not in HUBS:
        raise ReferenceError(f"THINKSERVE_HUB must be hf or modelscope, not {value!r}")
    return "hf" if value == "hf" else "modelscope"


def _rows() -> list[dict[str, Any]]:
    """Pulled files first, then GGUFs other tools left in the hubs' caches."""
    rows = []
    seen: set[Path] = set()
    for entry in Manifest(_data_dir()).entries():
        ref = Reference.parse(entry.reference)
        path = cached_file(ref, hub_for(ref.hub))
        if path is not None:
            seen.add(path)
        rows.append(_row(entry.names, entry.reference, entry.quant, entry.size, path))
    for hub_name in HUBS:
        for ref, path in hub_for(hub_name).inventory():
            if path not in seen:
                parts = [path.with_name(Path(p).name) for p in ref.parts()]
                size = sum(f.stat().st_size for f in parts if f.exists())
                rows.append(_row([], str(ref), quant_of(ref.path) or None, size, path))
    return rows


def _row(names: list[str], source: str, quant: str | None, size: int, path: Path | None) -> dict[str, Any]:
    file = str(path) if path else None
    return {"names": names, "source": source, "quant": quant, "size": size, "file": file}


def models(args: argparse.Namespace) -> int:
    rows = _rows()
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return 0
    if not rows:
        sys.stdout.write("nothing pulled yet: thinkserve pull NAME (e.g. qwen3-8b) or hf://ORG/REPO/FILE\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("served names", "source", "quant", "size", "file")
    for row in rows:
        table.add_row(
            ", ".join(row["names"]) or "-",
            row["source"],
            row["quant"] or "-",
            human_size(row["size"]),
            row["file"] or "(missing from the cache)",
        )
    Console(width=200).print(table)
    return 0


def remove(args: argparse.Namespace) -> int:
    """By served name or by reference; a reference need not have been pulled by thinkserve."""
    manifest = Manifest(_data_dir())
    entries = manifest.find(args.target)
    try:
        refs = [Reference.parse(e.reference) for e in entries] or (
            [Reference.parse(args.target)] if is_reference(args.target) else []
        )
    except ReferenceError as exc:
        return _fail(str(exc), 2)
    freed = 0
    for ref in refs:
        hub = hub_for(ref.hub)
        for part in ref.parts():
            freed += hub.remove(ref.with_path(part))
    if not entries and not freed:
        return _fail(f"nothing pulled or cached serves or is {args.target!r}; see `thinkserve models`", 2)
    manifest.remove(entries)
    sys.stdout.write(f"removed {', '.join(str(r) for r in refs)}: {human_size(freed)} freed\n")
    return 0
