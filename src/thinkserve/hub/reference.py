"""A hub file reference: ``hf://ORG/REPO/PATH[@REVISION]`` or ``modelscope://ORG/REPO/PATH[@REVISION]``.

``PATH`` may have folders (``hf://unsloth/DeepSeek-R1-GGUF/Q2_K/DeepSeek-R1-Q2_K-00001-of-00005.gguf``).
A split GGUF is named by any of its parts; ``parts()`` lists them all::

    >>> Reference.parse("hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf").repo
    'Qwen/Qwen3-8B-GGUF'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

HubName = Literal["hf", "modelscope"]
HUBS: tuple[HubName, ...] = ("hf", "modelscope")
DEFAULT_REVISION: dict[HubName, str] = {"hf": "main", "modelscope": "master"}

# llama.cpp's gguf-split names: NAME-00001-of-00003.gguf
_SPLIT = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ReferenceError(ValueError):
    """Not a usable hub reference."""


def is_reference(text: str) -> bool:
    return any(text.startswith(f"{hub}://") for hub in HUBS)


@dataclass(frozen=True, slots=True)
class Reference:
    hub: HubName
    repo: str
    """``ORG/REPO``."""
    path: str
    """The file inside the repo, with folders."""
    revision: str

    @classmethod
    def parse(cls, text: str) -> Reference:
        hub, sep, rest = text.partition("://")
        if not sep or hub not in HUBS:
            raise ReferenceError(
                f"{text!r} is not a hub reference (hf://ORG/REPO/FILE or modelscope://ORG/REPO/FILE)"
            )
        name: HubName = "hf" if hub == "hf" else "modelscope"
        rest, at, revision = rest.partition("@")
        parts = rest.split("/")
        if (
            len(parts) < 3
            or not all(_SEGMENT.match(p) for p in parts)
            or (at and not _SEGMENT.match(revision))
        ):
            raise ReferenceError(f"{text!r}: expected {hub}://ORG/REPO/FILE[@REVISION]")
        return cls(name, "/".join(parts[:2]), "/".join(parts[2:]), revision or DEFAULT_REVISION[name])

    def __str__(self) -> str:
        suffix = "" if self.revision == DEFAULT_REVISION[self.hub] else f"@{self.revision}"
        return f"{self.hub}://{self.repo}/{self.path}{suffix}"

    def with_path(self, path: str) -> Reference:
        return replace(self, path=path)

    def parts(self) -> list[str]:
        """The paths of every part: ``[path]``, or all ``-0000i-of-0000N`` names of a split GGUF."""
        return split_parts(self.path)


def split_parts(path: str) -> list[str]:
    """``a/X-00002-of-00003.gguf`` -> ``a/X-00001-of-00003.gguf``, ``a/X-00002-…``, ``a/X-00003-…``."""
    folder, _, name = path.rpartition("/")
    match = _SPLIT.match(name)
    if match is None:
        return [path]
    count = int(match["count"])
    prefix = f"{folder}/" if folder else ""
    return [f"{prefix}{match['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def first_part(path: str) -> str:
    """The path llama.cpp opens: the first part of a split GGUF, else the path itself."""
    return split_parts(path)[0]
