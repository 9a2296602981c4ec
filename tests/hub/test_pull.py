"""Pulls from the stand-in hubs through the real clients: layout, resume, hashes, disk space, splits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from tests.hub.conftest import TINY, Running, client_for, split_files, tiny_bytes
from tests.hub.standins import COMMIT, REPO, Hub
from thinkserve.catalogue.sources import Source
from thinkserve.hub.disk import NotEnoughSpace
from thinkserve.hub.huggingface import HuggingFace
from thinkserve.hub.modelscope import ModelScope
from thinkserve.hub.puller import pull_name, pull_reference, pull_repo
from thinkserve.hub.reference import Reference
from thinkserve.hub.remote import HubUnreachable, NotOnHub
from thinkserve.hub.transfer import HashMismatch


class Recorder:
    """A reporter that remembers what it was told (and can play Ctrl-C after some bytes)."""

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.begun: list[tuple[str, int, int]] = []
        self.bytes = 0
        self.interrupt_after = interrupt_after

    def begin(self, label: str, total: int, done: int) -> None:
        self.begun.append((label, total, done))

    def advance(self, n: int) -> None:
        self.bytes += n
        if self.interrupt_after is not None and self.bytes >= self.interrupt_after:
            raise KeyboardInterrupt

    def restart(self) -> None:
        self.bytes = 0

    def end(self) -> None:
        pass


def ref(running: Running, path: str = TINY) -> Reference:
    revision = "main" if running.hub.kind == "hf" else "master"
    return Reference("hf" if running.hub.kind == "hf" else "modelscope", REPO, path, revision)


def test_pull_lands_in_the_hub_cache_layout(standin: Running, tmp_path: Path) -> None:
    hub = client_for(standin, tmp_path)
    pulled = pull_reference(hub, ref(standin), Recorder())
    path = pulled.paths[0]
    assert path.read_bytes() == tiny_bytes()
    assert pulled.commit == COMMIT
    if isinstance(hub, HuggingFace):
        # huggingface_hub itself finds it, offline: the same layout.
        found = hf_hub_download(REPO, TINY, cache_dir=tmp_path, local_files_only=True)
        assert Path(found).read_bytes() == tiny_bytes()
        assert Path(found).resolve().name == hashlib.sha256(tiny_bytes()).hexdigest()
        assert (tmp_path / "models--thinkserve-test--tiny-qwen3-GGUF" / "refs" / "main").read_text() == COMMIT
    else:
        assert (
            path == tmp_path / "models" / "thinkserve-test--tiny-qwen3-GGUF" / "snapshots" / "master" / TINY
        )
    # A second pull finds it in the cache and downloads nothing.
    before = len(standin.hub.downloads())
    again = pull_reference(hub, ref(standin), Recorder())
    assert again.paths == pulled.paths and len(standin.hub.downloads()) == before


def test_a_dropped_connection_resumes_with_a_range(standin: Running, tmp_path: Path) -> None:
    standin.hub.drop_after[TINY] = 3 * 1024 * 1024
    pulled = pull_reference(client_for(standin, tmp_path), ref(standin), Recorder())
    assert pulled.paths[0].read_bytes() == tiny_bytes()
    assert standin.hub.downloads() == [(TINY, None), (TINY, f"bytes={3 * 1024 * 1024}-")]


def test_ctrl_c_leaves_only_a_partial_file_and_the_next_pull_resumes(
    standin: Running, tmp_path: Path
) -> None:
    hub = client_for(standin, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        pull_reference(hub, ref(standin), Recorder(interrupt_after=2 * 1024 * 1024))
    assert hub.cached(ref(standin)) is None  # nothing where the server reads
    partials = list(tmp_path.rglob("*.incomplete"))
    assert len(partials) == 1 and 0 < partials[0].stat().st_size < len(tiny_bytes())
    kept = partials[0].stat().st_size
    recorder = Recorder()
    pulled = pull_reference(hub, ref(standin), recorder)
    assert pulled.paths[0].read_bytes() == tiny_bytes()
    assert standin.hub.downloads()[-1] == (TINY, f"bytes={kept}-")
    assert recorder.begun == [(TINY, len(tiny_bytes()), kept)]
    assert not list(tmp_path.rglob("*.incomplete"))


def test_a_corrupted_download_is_deleted(standin: Running, tmp_path: Path) -> None:
    standin.hub.corrupt.add(TINY)
    hub = client_for(standin, tmp_path)
    with pytest.raises(HashMismatch, match=r"does not match the hub's.*it was deleted"):
        pull_reference(hub, ref(standin), Recorder())
    assert hub.cached(ref(standin)) is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and ".locks" not in p.parts]


def test_too_little_disk_fails_before_the_first_byte(standin: Running, tmp_path: Path) -> None:
    with pytest.raises(NotEnoughSpace, match=r"needs 16\.\d MB .* 1\.0 MB is free"):
        pull_reference(client_for(standin, tmp_path), ref(standin), Recorder(), free=lambda _: 1_000_000)
    assert standin.hub.downloads() == []


def test_a_split_gguf_pulls_every_part(standin: Running, tmp_path: Path) -> None:
    parts = split_files()
    second = sorted(parts)[1]
    pulled = pull_reference(client_for(standin, tmp_path), ref(standin, second), Recorder())
    assert [p.name for p in pulled.paths] == [Path(p).name for p in sorted(parts)]
    assert b"".join(p.read_bytes() for p in pulled.paths) == tiny_bytes()
    assert pulled.size == len(tiny_bytes())
    # Every part sits in the same folder, where llama.cpp looks for the others.
    assert len({p.parent for p in pulled.paths}) == 1


def test_a_name_pulls_its_quantization_from_the_listing(standin: Running, tmp_path: Path) -> None:
    source = Source("tiny", gguf={standin.hub.kind: REPO}, quant="Q8_0")
    pulled, quant = pull_name("tiny", source, client_for(standin, tmp_path), Recorder())
    assert quant == "Q8_0"
    assert pulled.reference.path == "split/tiny-qwen3-Q8_0-00001-of-00003.gguf"
    with pytest.raises(NotOnHub, match="no Q4_K_M GGUF in the repo; it has: Q8_0"):
        pull_name("tiny", source, client_for(standin, tmp_path), Recorder(), quant="Q4_K_M")


def test_unknown_repo_and_file_are_not_on_the_hub(standin: Running, tmp_path: Path) -> None:
    hub = client_for(standin, tmp_path)
    with pytest.raises(NotOnHub):
        pull_reference(hub, Reference(ref(standin).hub, "nobody/nothing", TINY, "main"), Recorder())
    with pytest.raises(NotOnHub):
        pull_reference(hub, ref(standin, "missing.gguf"), Recorder())


@pytest.mark.parametrize("kind", ["hf", "modelscope"])
def test_an_unreachable_hub_fails_fast_naming_the_mirror_setting(kind: str, tmp_path: Path) -> None:
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    hub = (
        HuggingFace(endpoint=dead, cache_dir=tmp_path, environ={})
        if kind == "hf"
        else ModelScope(endpoint=dead, cache_dir=tmp_path, environ={})
    )
    target = Reference("hf" if kind == "hf" else "modelscope", REPO, TINY, "main")
    with pytest.raises(HubUnreachable, match="HF_ENDPOINT" if kind == "hf" else "MODELSCOPE_ENDPOINT"):
        pull_reference(hub, target, Recorder())


def test_the_token_goes_to_the_hub_and_not_to_the_cdn(standin: Running, tmp_path: Path) -> None:
    if standin.hub.kind == "hf":
        hub: HuggingFace | ModelScope = HuggingFace(
            endpoint=standin.url, cache_dir=tmp_path, environ={"HF_TOKEN": "hf_secret"}
        )
    else:
        hub = ModelScope(
            endpoint=standin.url, cache_dir=tmp_path, environ={"MODELSCOPE_API_TOKEN": "ms-secret"}
        )
    pull_reference(hub, ref(standin), Recorder())
    seen = dict(standin.hub.authorization)
    if standin.hub.kind == "hf":
        assert seen[f"resolve:{TINY}"] == "Bearer hf_secret"
        assert seen[TINY] is None  # the CDN (another host) never sees it
    else:
        assert seen["api:files"] == seen[TINY] == "Bearer ms-secret"


@pytest.mark.parametrize("kind", ["hf", "modelscope"])
def test_a_safetensors_repo_is_pulled_whole_into_one_folder(kind: str, tmp_path: Path) -> None:
    files = {
        "config.json": b'{"architectures": ["Qwen3ForCausalLM"]}',
        "model-00001-of-00002.safetensors": tiny_bytes()[:4_000_000],
        "model-00002-of-00002.safetensors": tiny_bytes()[4_000_000:8_000_000],
        "tokenizer/tokenizer.json": b'{"version": "1.0"}',
    }
    running = Running(Hub(kind, files))
    try:
        folder = pull_repo(client_for(running, tmp_path), REPO, Recorder())
    finally:
        running.stop()
    assert {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    } == files
    if kind == "hf":
        # Files kept in git are checked against their git blob sha1, the name huggingface_hub caches them by.
        config = files["config.json"]
        git_sha = hashlib.sha1(f"blob {len(config)}\0".encode() + config).hexdigest()
        assert (folder / "config.json").resolve().name == git_sha
