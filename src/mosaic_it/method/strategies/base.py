"""What a rule sees and what it decides, and the registry of strategies.

A strategy is one module of this package that registers a :class:`Strategy` when imported:
composing (:mod:`mosaic_it.method.compose`) and verifying (:mod:`mosaic_it.verifier`) find it
by the name a sample's spec carries, so adding a strategy touches its own module and its
section of the rule pack, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from mosaic_it.method.textunits import (
    WORD_READINGS,
    has_segmented_script,
    word_range,
)

if TYPE_CHECKING:
    from mosaic_it.method.pack import PackChecker, RulePack
    from mosaic_it.records import MosaicSpec
    from mosaic_it.rng import Rng


class Item(NamedTuple):
    """One instruction of a sample, as shown in the prompt (a tuple: made for every sample):
    its text is everything written for it, its input included."""

    number: int  # 1-based position in the prompt
    text: str


@dataclass(frozen=True, slots=True)
class RuleChoice:
    """A rule applied to a sample: its meta-instruction and the answers that make it true."""

    strategy: str
    rule: str
    meta: str
    answer_order: list[int]  # instruction numbers, in answer order
    masked: list[int] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


class Passed(NamedTuple):
    """A rule drawn for a sample but not used, and why (for the run's summary)."""

    rule: str  # "" when no rule of the strategy could be drawn (see the reason)
    # "numbers", "letters", "equal", "margin", "reading" (a rule about words that another
    # reading of a word would flip), "identity", "tie", "meta_like" (an instruction of the
    # sample reads as a meta-instruction: no rule at all)
    reason: str


def apart(a: int, b: int, margins: dict[str, float] | None, unit: str) -> bool:
    """Whether counts ``a`` and ``b`` (in ``unit``: "words" or "characters") are far enough
    apart for a reader to tell which is larger at a glance: by at least the pack's absolute
    margin and by its relative margin of the larger. Without margins, any difference will do."""
    gap = abs(a - b)
    if margins is None:
        return gap > 0
    return gap > 0 and gap >= margins[unit] and gap >= margins["relative"] * max(a, b)


def words_apart(
    fewer: Sequence[str], more: Sequence[str], margins: dict[str, float] | None
) -> bool:
    """Whether every text of ``fewer`` has clearly fewer words than every text of ``more``
    under every common reading of a word (:data:`~mosaic_it.method.textunits.WORD_READINGS`),
    by the pack's margins under each; and, where Thai, Lao, Khmer or Myanmar is written, over
    the whole range of counts a dictionary could give (:func:`word_range`). A rule about words
    is drawn only where this holds, so no reader's count of a word flips its decision."""
    for read in WORD_READINGS:
        high, low = max(map(read, fewer)), min(map(read, more))
        if low <= high or not apart(high, low, margins, "words"):
            return False
    if any(map(has_segmented_script, (*fewer, *more))):
        high = max(word_range(t)[1] for t in fewer)
        low = min(word_range(t)[0] for t in more)
        if low <= high or not apart(high, low, margins, "words"):
            return False
    return True


def join_numbers(numbers: list[int], separator: str, last_separator: str) -> str:
    """``[2, 5, 7]`` -> ``"2, 5 and 7"``."""
    words = [str(n) for n in numbers]
    if len(words) <= 1:
        return "".join(words)
    return separator.join(words[:-1]) + last_separator + words[-1]


@dataclass(frozen=True, slots=True)
class Check:
    """One thing a response (or a spec) was checked for.

    ``passed`` is None when the spec states nothing that makes it checkable (for instance the
    answer order of an unnumbered sample): "not verifiable" is neither a pass nor a fail.
    """

    name: str
    passed: bool | None
    reason: str = ""

    @property
    def status(self) -> str:
        return "not_verifiable" if self.passed is None else "pass" if self.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "reason": self.reason}


def format_numbers(numbers: list[int] | tuple[int, ...]) -> str:
    return ", ".join(map(str, numbers)) if numbers else "none"


# ---------------------------------------------------------------------------- the registry

# (rng, pack, items, numbered, passed) -> the rule drawn for these instructions, or None
ChooseRule = Callable[
    ["Rng", "RulePack", list[Item], bool, "list[Passed] | None"], "RuleChoice | None"
]
# (spec, its instructions) -> why the spec's answers are not what its rule gives for these
# instructions, or None when they are
CheckSpec = Callable[["MosaicSpec", list[Item]], str | None]


# (checker, the strategy's section of a rule pack) -> None; a fault fails through the checker
CheckPack = Callable[["PackChecker", Any], None]
# the section -> its pools of texts, as (JSON path, holder, key): entries holding a string the
# pack avoids are left out
PackPools = Callable[[dict[str, Any]], list[tuple[str, dict[str, Any], str]]]


@dataclass(frozen=True)
class Strategy:
    """One strategy, as composing and verifying see it."""

    name: str  # the name a spec carries ("strategy")
    rules: tuple[str | None, ...]  # the rules a spec of it may name (None: no rule)
    check: CheckSpec  # the rule re-applied to a sample's instructions (verification)
    choose: ChooseRule | None = None  # draws a rule for a sample; None: a layout only
    # rules that measure an instruction's text: their meta-instruction says the input counts
    measured: frozenset[str] = frozenset()
    check_pack: CheckPack | None = None  # checks its section of a rule pack (named after it)
    pack_pools: PackPools | None = None


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Make ``strategy`` known by its name (a strategy module does this once, when imported)."""
    known = _REGISTRY.get(strategy.name)
    if known is not None and known is not strategy:
        raise ValueError(f"a strategy named {strategy.name!r} is registered already")
    _REGISTRY[strategy.name] = strategy
    return strategy


def unregister(name: str) -> None:
    """Forget a strategy registered by :func:`register` (one made for a single run)."""
    _REGISTRY.pop(name, None)


def find_strategy(name: str) -> Strategy | None:
    """The registered strategy of that name, or None."""
    return _REGISTRY.get(name)


def registered() -> tuple[str, ...]:
    """The names of every registered strategy, in the order they registered."""
    return tuple(_REGISTRY)
