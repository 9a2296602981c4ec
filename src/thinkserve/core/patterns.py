"""A regex that finds any of many literal texts (imports nothing of thinkserve)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def any_of(texts: Iterable[str]) -> re.Pattern[str] | None:
    """A regex matching any of ``texts``, the longest one where several start at a place; None
    when there are none::

        any_of(["<|im_end|>", "<|im_start|>"]).pattern  # '\\<\\|im_(?:end\\|\\>|start\\|\\>)'

    Built as a trie, one branch per next character, not as a flat alternation: some vocabularies
    hold hundreds of special tokens sharing a prefix (Llama 3's ``<|reserved_special_token_N|>``),
    and a flat alternation would try each of them at every ``<|`` of the text.
    """
    trie: dict[str, Any] = {}
    for text in texts:
        if text:
            node = trie
            for ch in text:
                node = node.setdefault(ch, {})
            node[""] = {}  # a text ends here
    if not trie:
        return None

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # Greedy: a longer text wins over one that is its prefix.
        return f"(?:{body})?" if "" in node else body

    return re.compile(build(trie))
