"""The hubs' own libraries and thinkserve share one cache: each finds what the other downloaded.

This also holds the stand-ins to the real clients: huggingface_hub and modelscope-hub download from them.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import hf_hub_download
from modelscope_hub import HubApi

from tests.hub.conftest import TINY, Running, client_for, tiny_bytes
from tests.hub.standins import REPO
from tests.hub.test_pull import Recorder, ref
from thinkserve.hub.puller import pull_reference


def library_download(standin: Running, cache: Path, *, offline: bool = False) -> Path:
    if standin.hub.kind == "hf":
        return Path(
            hf_hub_download(
                REPO, TINY, cache_dir=cache, endpoint=standin.url, local_files_only=offline, token=False
            )
        )
    api = HubApi(endpoint=standin.url)
    return Path(api.download_file(REPO, "model", TINY, cache_dir=cache, local_files_only=offline))


def test_the_library_finds_what_thinkserve_pulled(standin: Running, tmp_path: Path) -> None:
    pulled = pull_reference(client_for(standin, tmp_path), ref(standin), Recorder())
    found = library_download(standin, tmp_path, offline=True)
    assert found == pulled.paths[0]
    assert found.read_bytes() == tiny_bytes()


def test_thinkserve_uses_what_the_library_downloaded(standin: Running, tmp_path: Path) -> None:
    downloaded = library_download(standin, tmp_path)
    assert downloaded.read_bytes() == tiny_bytes()
    before = len(standin.hub.downloads())
    pulled = pull_reference(client_for(standin, tmp_path), ref(standin), Recorder())
    assert pulled.paths[0] == downloaded
    assert len(standin.hub.downloads()) == before  # nothing fetched twice
