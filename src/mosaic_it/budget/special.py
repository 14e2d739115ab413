"""Special tokens: strings a tokenizer or a chat template gives a meaning of their own.

A tag, label or phrasing that holds one (``<|end|>`` is Phi-3's end of turn) would end the
turn in the middle of an answer when the sample is trained with that tokenizer; a record whose
own text holds one does the same. At the start of a run the tokenizer's special tokens and the
template's control strings are collected: the rule pack leaves out every tag, label and
phrasing holding one (a fixed list of well-known chat-control strings, the pack's
``avoid_strings``, is avoided always, so a mosaic made for one tokenizer stays safe for
another), and records holding one are counted and listed, and by default left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mosaic_it.budget.literals import literal_pattern
from mosaic_it.budget.templates import Template
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.records import TEXT_FIELDS, Record

SPECIAL_TOKEN_MODES = ("skip", "keep", "error")


def run_special_strings(tokenizer: Tokenizer, template: Template) -> frozenset[str]:
    """The tokenizer's special tokens and the template's control strings."""
    special = set(tokenizer.special_strings())
    special |= set(template.controls)
    text = template.prefix + template.middle + template.suffix + (template.system_prefix or "")
    special |= {t for t in tokenizer.added_strings() if t in text}
    return frozenset(s for s in special if s.strip())


class SpecialFinder:
    """Finds the first special string a record's text holds."""

    def __init__(self, strings: Iterable[str]) -> None:
        self.pattern = literal_pattern(strings)  # leftmost, then longest

    def find(self, record: Record) -> tuple[str, str] | None:
        """(field, string) of the first special string in the record, or None."""
        return self.find_in(record.texts())

    def find_in(self, texts: Sequence[str]) -> tuple[str, str] | None:
        """:meth:`find` over a record's texts, in the order of :data:`TEXT_FIELDS`."""
        if self.pattern is None:
            return None
        search = self.pattern.search
        for name, text in zip(TEXT_FIELDS, texts):
            m = search(text)
            if m:
                return name, m.group()
        return None
