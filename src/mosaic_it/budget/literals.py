"""One regular expression for many literal strings, found leftmost then longest.

A tokenizer can bring thousands of special tokens (Gemma 3 has 6,251), and every record is
searched for them. An alternation of the escaped strings makes the regex engine try each one at
every position where the first character fits, so a search cost grows with the number of
strings; the same strings as a trie (``<(?:eos>|start_of_(?:image|turn)>|...)``) try one
branch per character, and a search costs about what a search for one string does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_END = ""  # the trie key that marks the end of a string (no character is empty)


def literal_pattern(strings: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of ``strings`` (empty ones left out), None when there is none.

    At a position the longest string that starts there wins, as with an alternation of the
    strings sorted longest first: where a string ends inside a longer one's path, the longer
    continuation is tried first.
    """
    trie: dict[str, dict] = {}
    for text in set(strings):
        if not text:
            continue
        node = trie
        for ch in text:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return re.compile(_expression(trie)) if trie else None


def _expression(node: dict[str, dict]) -> str:
    """The expression for the strings below ``node`` (a path of single characters is written
    in one piece, so long strings do not nest)."""
    head = []
    while len(node) == 1 and _END not in node:
        [(ch, node)] = node.items()
        head.append(re.escape(ch))
    branches = [re.escape(ch) + _expression(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return "".join(head)
    body = "(?:" + "|".join(branches) + ")" if len(branches) > 1 or _END in node else branches[0]
    return "".join(head) + (body + "?" if _END in node else body)
