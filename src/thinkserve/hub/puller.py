"""A pull: from a name or a reference to verified files in a hub's cache, recorded in the manifest.

Every part's metadata is asked for first; the free space is checked against what is still missing
before the first byte; then each part is fetched (transfer.py) and moved into place by its hub.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock

from thinkserve.catalogue.sources import Source
from thinkserve.hub.disk import FreeSpace, ensure_room, free_bytes
from thinkserve.hub.huggingface import HuggingFace
from thinkserve.hub.manifest import Entry, Manifest
from thinkserve.hub.modelscope import ModelScope
from thinkserve.hub.reference import DEFAULT_REVISION, HubName, Reference, split_parts
from thinkserve.hub.remote import Hub, HubError, ListedFile, NotOnHub, RemoteFile
from thinkserve.hub.transfer import Reporter, fetch

# Downloads: no read timeout between chunks shorter than a slow mirror needs.
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def hub_for(name: HubName, environ: Mapping[str, str] | None = None) -> Hub:
    return HuggingFace(environ=environ) if name == "hf" else ModelScope(environ=environ)


@dataclass(frozen=True, slots=True)
class Pulled:
    reference: Reference
    paths: list[Path]
    """Every part in the cache; the server opens the first."""
    size: int
    commit: str


def pull_reference(
    hub: Hub,
    ref: Reference,
    reporter: Reporter,
    *,
    free: FreeSpace = free_bytes,
    client: httpx.Client | None = None,
) -> Pulled:
    """Fetch every part of ``ref`` that is not in the cache yet (the cache may already hold it)."""
    return pull_files(
        hub, ref, [ref.with_path(p) for p in split_parts(ref.path)], reporter, free=free, client=client
    )


def pull_repo(hub: Hub, repo: str, reporter: Reporter, *, free: FreeSpace = free_bytes) -> Path:
    """Fetch a whole repo (safetensors weights, config, tokenizer); return its snapshot folder."""
    revision = DEFAULT_REVISION[hub.name]
    files = [Reference(hub.name, repo, f.path, revision) for f in hub.listing(repo, revision)]
    if not files:
        raise NotOnHub(f"{hub.name}://{repo} has no files")
    pulled = pull_files(hub, files[0], files, reporter, free=free)
    first = pulled.paths[0]
    return first.parents[len(Path(files[0].path).parts) - 1]


def pull_files(
    hub: Hub,
    ref: Reference,
    files: list[Reference],
    reporter: Reporter,
    *,
    free: FreeSpace = free_bytes,
    client: httpx.Client | None = None,
) -> Pulled:
    """Fetch ``files`` (recorded as ``ref``): every size and hash first, the disk check, then the bytes."""
    remotes = [hub.describe(p) for p in files]
    missing = [(p, r) for p, r in zip(files, remotes, strict=True) if _current(hub, p, r) is None]
    needed = 0
    for part, remote in missing:
        partial = hub.partial_path(part, remote)
        needed += remote.size - (partial.stat().st_size if partial.exists() else 0)
    ensure_room(needed, hub.cache_dir, free)
    own = client is None
    http = client or httpx.Client(timeout=DOWNLOAD_TIMEOUT, follow_redirects=True)
    try:
        for part, remote in missing:
            partial = hub.partial_path(part, remote)
            # Two pulls of one file at once would append to one partial file: the second waits.
            locks = hub.cache_dir / ".locks"
            locks.mkdir(parents=True, exist_ok=True)
            with FileLock(locks / f"thinkserve-{remote.digest}.lock"):
                if _current(hub, part, remote) is None:
                    fetch(remote, partial, reporter, http)
                    hub.install(part, remote, partial)
    finally:
        if own:
            http.close()
    paths = []
    for part, remote in zip(files, remotes, strict=True):
        path = _current(hub, part, remote)
        if path is None:
            raise HubError(f"{part}: downloaded, but the cache does not return it")
        paths.append(path)
    return Pulled(ref, paths, sum(r.size for r in remotes), remotes[0].commit)


def _current(hub: Hub, ref: Reference, remote: RemoteFile) -> Path | None:
    """The cached file if it is the one the hub serves now (same size; same blob on Hugging Face)."""
    path = hub.cached(ref)
    if path is None or path.stat().st_size != remote.size:
        return None
    if hub.name == "hf" and path.resolve().name != remote.digest:
        return None
    return path


def choose_file(source: Source, files: list[ListedFile], quant: str) -> str:
    """The GGUF of ``quant`` in a listing: its first part when split, the shortest path if several match."""
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])", re.IGNORECASE)
    found = sorted(
        (f.path for f in files if f.path.endswith(".gguf") and pattern.search(f.path.rsplit("/", 1)[-1])),
        key=lambda p: (len(p), p),
    )
    found = [p for p in found if split_parts(p)[0] == p]
    if not found:
        quants = sorted({quant_of(f.path) for f in files if f.path.endswith(".gguf")} - {""})
        raise NotOnHub(
            f"{source.name}: no {quant} GGUF in the repo; it has: {', '.join(quants) or 'no GGUF files'}"
        )
    return found[0]


_QUANT = re.compile(r"((?:UD-)?(?:I?Q\d[A-Z0-9_]*|[BF]F?16|F32|TQ\d_\d))", re.IGNORECASE)


def quant_of(path: str) -> str:
    """``DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf`` -> ``Q4_K_M``; ``""`` when the name shows none."""
    name = re.sub(r"-\d{5}-of-\d{5}", "", path.rsplit("/", 1)[-1].removesuffix(".gguf"))
    matches = _QUANT.findall(name)
    return matches[-1].upper() if matches else ""


def pull_name(
    name: str,
    source: Source,
    hub: Hub,
    reporter: Reporter,
    *,
    quant: str | None = None,
    free: FreeSpace = free_bytes,
) -> tuple[Pulled, str]:
    """Pull the GGUF behind a catalogue name; returns it and the quantization taken."""
    repo = source.gguf.get(hub.name)
    if repo is None:
        where = ", ".join(f"{h}: {r}" for h, r in source.safetensors.items())
        raise NotOnHub(
            f"{name} has no GGUF for llama.cpp on {hub.name}; its weights are safetensors ({where}), "
            "for an engine that loads them"
        )
    chosen = quant or source.quant or "Q4_K_M"
    revision = DEFAULT_REVISION[hub.name]
    path = choose_file(source, hub.listing(repo, revision), chosen)
    return pull_reference(hub, Reference(hub.name, repo, path, revision), reporter, free=free), chosen


def record(manifest: Manifest, pulled: Pulled, names: list[str], quant: str | None) -> Entry:
    entry = Entry(str(pulled.reference), sorted(names), quant, pulled.size, pulled.commit)
    manifest.add(entry)
    return entry
