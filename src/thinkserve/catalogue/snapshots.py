"""Dated snapshot names of the families whose later snapshots the seed page names (imports core,
catalogue.spec).

The seed says the Plus and Turbo series are hybrid for "qwen-plus-2025-04-28 及之後的快照版模型"
(that snapshot and every later one), and Flash for qwen-flash-2025-07-28 and later. So a name
``<family>-YYYY-MM-DD`` that the catalogue does not list is served when:

- ``<family>`` is one of those families (``LATER_SNAPSHOTS``), and the catalogue (or config) serves
  ``<family>``;
- ``YYYY-MM-DD`` is a real date, on or after the family's first hybrid snapshot.

It then follows the rules of the family's own name (``qwen-plus-2025-07-14`` -> ``qwen-plus``:
hybrid, thinking off by default, non-streaming thinking answered, its limits), under the dated
name, and on the family's engine. The soft switch (``/think``, ``/no_think``) is not inherited:
the seed grants it to the 2025-04-28 snapshots only, which the catalogue lists by name. Any other
unknown name, an earlier date or a malformed one stays a 404 (``model_not_found``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import date

from thinkserve.catalogue.spec import ModelSpec

LATER_SNAPSHOTS: dict[str, date] = {
    "qwen-plus": date(2025, 4, 28),
    "qwen-turbo": date(2025, 4, 28),
    "qwen-flash": date(2025, 7, 28),
}
"""Family -> its first snapshot that the seed names with "and later snapshots"."""

_DATED = re.compile(r"(?P<family>[a-z0-9.-]+?)-(?P<date>\d{4}-\d{2}-\d{2})")


def resolve(name: str, models: Mapping[str, ModelSpec]) -> ModelSpec | None:
    """The spec serving ``name``: listed, or a later snapshot of a listed family; else None."""
    spec = models.get(name)
    if spec is not None:
        return spec
    m = _DATED.fullmatch(name)
    if m is None:
        return None
    first = LATER_SNAPSHOTS.get(m.group("family"))
    family = models.get(m.group("family"))
    if first is None or family is None:
        return None
    try:
        day = date.fromisoformat(m.group("date"))
    except ValueError:
        return None
    if day < first:
        return None
    return replace(family, name=name, soft_switch=False)
