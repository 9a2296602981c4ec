"""References, split names, quantization choice and the manifest (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkserve.catalogue.sources import load_sources
from thinkserve.catalogue.spec import load_catalogue
from thinkserve.hub.manifest import Entry, Manifest
from thinkserve.hub.puller import choose_file
from thinkserve.hub.reference import Reference, ReferenceError, split_parts
from thinkserve.hub.remote import ListedFile, NotOnHub


def test_references_parse_and_print_back() -> None:
    ref = Reference.parse("hf://unsloth/DeepSeek-R1-GGUF/UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00002-of-00003.gguf")
    assert (ref.hub, ref.repo, ref.revision) == ("hf", "unsloth/DeepSeek-R1-GGUF", "main")
    assert ref.path == "UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00002-of-00003.gguf"
    assert ref.parts() == [f"UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    pinned = Reference.parse("modelscope://Qwen/QwQ-32B-GGUF/qwq-32b-q4_k_m.gguf@v1.0")
    assert (pinned.revision, str(pinned)) == (
        "v1.0",
        "modelscope://Qwen/QwQ-32B-GGUF/qwq-32b-q4_k_m.gguf@v1.0",
    )
    assert str(Reference.parse("modelscope://Qwen/X/y.gguf")) == "modelscope://Qwen/X/y.gguf"
    assert split_parts("Qwen3-8B-Q4_K_M.gguf") == ["Qwen3-8B-Q4_K_M.gguf"]


@pytest.mark.parametrize(
    "text",
    ["hf://Qwen/Qwen3-8B-GGUF", "s3://a/b/c", "hf://a/b/../c", "hf://a//c", "hf://a/b/c@", "hf://a/b/ c"],
)
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(ReferenceError):
        Reference.parse(text)


def test_choose_file_takes_the_exact_quantization_and_the_first_part() -> None:
    source = load_sources()["qwq-32b"]
    files = [
        ListedFile(p, 1)
        for p in (
            "README.md",
            "qwq-32b-q4_k_m.gguf",
            "qwq-32b-q4_k.gguf",
            "qwq-32b-q8_0.gguf",
            "fp16/qwq-32b-fp16-00002-of-00002.gguf",
            "fp16/qwq-32b-fp16-00001-of-00002.gguf",
        )
    ]
    assert choose_file(source, files, "Q4_K_M") == "qwq-32b-q4_k_m.gguf"
    assert choose_file(source, files, "Q4_K") == "qwq-32b-q4_k.gguf"
    assert choose_file(source, files, "FP16") == "fp16/qwq-32b-fp16-00001-of-00002.gguf"
    with pytest.raises(NotOnHub, match="no Q2_K GGUF"):
        choose_file(source, files, "Q2_K")


def test_every_source_is_a_catalogue_name_with_a_quant_for_its_gguf() -> None:
    catalogue = load_catalogue()
    for name, source in load_sources().items():
        assert name in catalogue
        assert source.safetensors
        assert (source.quant is not None) == bool(source.gguf)
    assert "qwen-plus" not in load_sources()


def test_the_manifest_moves_a_name_to_the_newest_file(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path)
    manifest.add(Entry("hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf", ["qwen3-8b"], "Q4_K_M", 5))
    manifest.add(Entry("hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q8_0.gguf", ["qwen3-8b"], "Q8_0", 9))
    assert manifest.served()["qwen3-8b"].quant == "Q8_0"
    assert [e.names for e in manifest.entries()] == [[], ["qwen3-8b"]]
    manifest.remove(manifest.find("qwen3-8b"))
    assert [e.reference for e in manifest.entries()] == ["hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf"]
