"""Format: the Primary Mosaic strategy: a sample gets its layout (:mod:`mosaic_it.method.layout`)
and no rule, so every instruction is answered, in the order given."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mosaic_it.method.strategies.base import Item, Strategy, format_numbers, register

if TYPE_CHECKING:
    from mosaic_it.records import MosaicSpec

NAME = "format"  # the paper's name; also what a sample without a rule names as its strategy


def check(spec: MosaicSpec, items: list[Item]) -> str | None:
    """Why a format-only sample's answers are not every instruction in order (None: they are)."""
    k = len(items)
    if spec.answer_order != list(range(1, k + 1)) or spec.masked:
        return (
            f"a format-only sample answers 1..{k} in order, the spec says "
            f"{format_numbers(spec.answer_order)}"
        )
    return None


STRATEGY = register(Strategy(NAME, (None,), check))
