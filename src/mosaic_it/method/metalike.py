"""Source instructions that read as meta-instructions.

A record such as "Skip instruction 2.", "Answer the questions in reverse order." or "Wrap your
answer in <b> tags" says something about how to answer the instructions of a message. Put into
a mosaic beside a real meta-instruction, a reader cannot tell which one is the sample's own
(least of all when the instructions are unnumbered), and a response that follows the sample's
rule contradicts it. Such records are found by the rule pack's ``meta_like`` patterns (regular
expressions, per language the pack covers, matched case-insensitively) and by the pack's own
phrasings (a record holding a sentence the pack writes). By default a sample holding one gets
no rule and no tags, and its instructions are numbered (see :mod:`.layout` and
:mod:`.compose`).
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mosaic_it.method.pack import RulePack

# the shortest literal stretch of a pack phrasing that, found in a record, makes it meta-like
_PHRASE_PIECE = 24
_SPACES = re.compile(r"\s+")


class MetaLike:
    """Tells whether an instruction reads as a meta-instruction (one object per rule pack)."""

    def __init__(self, patterns: dict[str, list[str]], phrasings: list[str]) -> None:
        self.patterns = [
            (language, re.compile(p, re.IGNORECASE))
            for language, texts in patterns.items()
            for p in texts
        ]
        pieces: set[str] = set()
        for text in phrasings:
            literal = [lit for lit, *_ in string.Formatter().parse(text)]
            piece = max((_SPACES.sub(" ", lit).strip().lower() for lit in literal), key=len)
            if len(piece) >= _PHRASE_PIECE:
                pieces.add(piece)
        self.pieces = tuple(sorted(pieces))
        self.why = lru_cache(maxsize=1 << 14)(self._why)

    def _why(self, text: str) -> str | None:
        """What in ``text`` reads as a meta-instruction (the language and the words), or None."""
        for language, pattern in self.patterns:
            found = pattern.search(text)
            if found is not None:
                return f"{language}: {found.group(0)!r}"
        flat = _SPACES.sub(" ", text).lower()
        for piece in self.pieces:
            if piece in flat:
                return f"phrasing: {piece!r}"
        return None

    def __call__(self, text: str) -> bool:
        return self.why(text) is not None

    def __getstate__(self) -> dict[str, object]:  # the cache stays behind (workers pickle it)
        return {"patterns": self.patterns, "pieces": self.pieces}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.why = lru_cache(maxsize=1 << 14)(self._why)


def meta_like(pack: RulePack) -> MetaLike:
    """The pack's detector of meta-like instructions, made once per pack."""
    found = pack.derived.get("meta_like")
    if found is None:
        found = pack.derived["meta_like"] = MetaLike(pack.data["meta_like"], pack_phrasings(pack))
    return found


def pack_phrasings(pack: RulePack) -> list[str]:
    """Every sentence the pack writes as a meta-instruction (placeholders left in)."""
    layout = pack.layout
    texts = layout["tag_phrasings"] + layout["generic_phrasings"] + pack.permute["tie_break"]
    for section in (pack.permute, pack.maskout):
        for rule in section["rules"].values():
            texts += rule if isinstance(rule, list) else rule["one"] + rule["many"]
    return texts
