"""What a hub tells about a file, and what every hub does (the ``Hub`` protocol; pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from thinkserve.hub.reference import HubName, Reference

Algorithm = Literal["sha256", "git-sha1"]


class HubError(Exception):
    """A pull that cannot go on; the message says why and what to do."""


class HubUnreachable(HubError):
    """The hub did not answer (no network, a firewall, a wrong mirror)."""


class NotOnHub(HubError):
    """The hub answered: no such repo, revision or file."""


@dataclass(frozen=True, slots=True)
class ListedFile:
    """One file of a repo listing."""

    path: str
    size: int | None


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file as the hub describes it right before the download."""

    path: str
    size: int
    digest: str
    """Hex digest the hub publishes: the sha256 of LFS files, else the git blob sha1."""
    algorithm: Algorithm
    url: str
    commit: str
    """The commit the revision resolved to (``X-Repo-Commit``, or the listing's ``Revision``)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers of the GET: authorization, user agent."""


class Hub(Protocol):
    """One hub: its file API and its cache layout (the layout its own library uses)."""

    name: HubName
    cache_dir: Path

    def listing(self, repo: str, revision: str) -> list[ListedFile]:
        """Every file of the repo at that revision (raises HubUnreachable, NotOnHub)."""
        ...

    def describe(self, ref: Reference) -> RemoteFile:
        """Size, hash, URL and commit of one file (raises HubUnreachable, NotOnHub)."""
        ...

    def partial_path(self, ref: Reference, remote: RemoteFile) -> Path:
        """Where the bytes go while they arrive: never a path the server reads."""
        ...

    def install(self, ref: Reference, remote: RemoteFile, finished: Path) -> Path:
        """Move a verified download into the cache; return the path the server reads."""
        ...

    def cached(self, ref: Reference) -> Path | None:
        """The cached file for ``ref``, without the network; None when it is not there."""
        ...

    def remove(self, ref: Reference) -> int:
        """Delete the cached file (and its blob); return the bytes freed."""
        ...

    def inventory(self) -> list[tuple[Reference, Path]]:
        """Every GGUF in the cache, whoever downloaded it: (reference, file), first parts only."""
        ...

    def mirror_hint(self) -> str:
        """What to set to reach the hub another way (printed when it is unreachable)."""
        ...
