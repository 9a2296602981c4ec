"""What ``thinkserve pull`` fetched: ``<data_dir>/pulled.json`` (written whole, atomically).

The file names references, not paths: the hubs' caches are the truth about which bytes are there::

    {"pulled": [{"reference": "hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf", "names": ["qwen3-8b"],
                 "quant": "Q4_K_M", "size": 5027783488,
                 "commit": "7c41481f57cb95916b40956ab2f0b139b296d974"}]}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Entry:
    reference: str
    names: list[str] = field(default_factory=list)
    """Served names this file serves (empty: pulled by reference, served only where the config says)."""
    quant: str | None = None
    size: int = 0
    """All parts together, in bytes."""
    commit: str = ""


class Manifest:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "pulled.json"

    def entries(self) -> list[Entry]:
        try:
            raw = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise ValueError(f"{self.path} is not valid JSON ({exc}); fix or delete it") from exc
        return [Entry(**item) for item in raw.get("pulled", []) if isinstance(item, dict)]

    def _save(self, entries: list[Entry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"pulled": [asdict(e) for e in entries]}, indent=1) + "\n", "utf-8")
        os.replace(tmp, self.path)

    def add(self, entry: Entry) -> None:
        """Record a pull; a name moves to the newest file that serves it."""
        kept = []
        for old in self.entries():
            if old.reference == entry.reference:
                entry = replace(entry, names=sorted(set(old.names) | set(entry.names)))
                continue
            kept.append(replace(old, names=[n for n in old.names if n not in entry.names]))
        self._save([*kept, entry])

    def remove(self, entries: list[Entry]) -> None:
        gone = {e.reference for e in entries}
        self._save([e for e in self.entries() if e.reference not in gone])

    def find(self, what: str) -> list[Entry]:
        """Entries serving the name ``what``, or pulled as the reference ``what``."""
        return [e for e in self.entries() if what in e.names or e.reference == what]

    def served(self) -> dict[str, Entry]:
        """Served name -> the entry that serves it."""
        return {name: e for e in self.entries() for name in e.names}
