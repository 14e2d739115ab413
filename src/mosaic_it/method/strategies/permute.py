"""Permute: the answers come in an order other than the instructions'.

Responses keep their original number labels. Sorting rules sort stably. Length rules (words,
characters, counted as :mod:`mosaic_it.method.textunits` defines them, over everything written for
an
instruction, its input included) are only drawn when every two neighbouring instructions of
the order differ by the rule pack's margins, so no two tie and no order hangs on a word or
two; alphabetical rules may tie on a first letter, and then say that tied instructions keep
their given order. By default a rule is not drawn when its order is the given one.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from mosaic_it.method.strategies.base import (
    Item,
    Passed,
    RuleChoice,
    Strategy,
    apart,
    format_numbers,
    register,
    words_apart,
)
from mosaic_it.method.textunits import char_count, first_letter, word_count
from mosaic_it.rng import Rng

if TYPE_CHECKING:
    from mosaic_it.method.pack import PackChecker, RulePack
    from mosaic_it.records import MosaicSpec

PERMUTE_RULES = (
    "FIX",
    "REVERSE",
    "ALPHA",
    "REVERSE_ALPHA",
    "LENGTH_WORD",
    "REVERSE_LENGTH_WORD",
    "LENGTH_CHAR",
    "REVERSE_LENGTH_CHAR",
    "ODD_EVEN",
    "EVEN_ODD",
)

# rule -> (sort key, descending, unit of the margin; None: letters, which may tie)
SORT_RULES: dict[str, tuple[Callable[[str], Any], bool, str | None]] = {
    "ALPHA": (first_letter, False, None),
    "REVERSE_ALPHA": (first_letter, True, None),
    "LENGTH_WORD": (word_count, False, "words"),
    "REVERSE_LENGTH_WORD": (word_count, True, "words"),
    "LENGTH_CHAR": (char_count, False, "characters"),
    "REVERSE_LENGTH_CHAR": (char_count, True, "characters"),
}
# rules that measure an instruction's text (its input included): their phrasing says so
MEASURED = frozenset(r for r, (_, _, unit) in SORT_RULES.items() if unit)
# rules that name instructions by number: only for numbered samples
NEEDS_NUMBERS = frozenset({"FIX", "ODD_EVEN", "EVEN_ODD"})
_KEY = itemgetter(0)  # of a (key, number) pair
# what an order's brackets may not hold (labels and comparisons use them), and separators that
# read as comparisons
ORDER_FORBIDDEN = "<>[]{}|#*_~=$"
COMPARISONS = frozenset({">", "<", ">=", "<=", "=", "==", "≥", "≤", ">>", "<<", "-", "+", "."})


def _sorted_order(
    rule: str, items: list[Item], margins: dict[str, float] | None
) -> tuple[list[int] | None, str]:
    """A sort rule's order, or None and why it does not apply."""
    key, descending, unit = SORT_RULES[rule]
    keys = [key(text) for _, text in items]
    if None in keys:
        return None, "letters"  # an instruction without an a-z first letter
    if len(set(keys)) < 2:
        return None, "equal"  # the order would say nothing
    # sorted() stays stable with reverse=True: ties keep the given order, as stated
    ranked = sorted(zip(keys, [it.number for it in items]), key=_KEY, reverse=descending)
    order = [n for _, n in ranked]
    if unit is not None and margins is not None:
        if not all(apart(a, b, margins, unit) for (a, _), (b, _) in pairwise(ranked)):
            return None, "margin"
        if unit == "words":
            # the order must hold as clearly under every other common reading of a word
            text = {it.number: it.text for it in items}
            ascending = order[::-1] if descending else order
            if not all(words_apart([text[a]], [text[b]], margins) for a, b in pairwise(ascending)):
                return None, "reading"
    return order, ""


def expected_order(
    rule: str, items: list[Item], params: dict[str, Any], margins: dict[str, float] | None = None
) -> list[int] | None:
    """The answer order the rule demands for these instructions (None: rule not applicable).
    With ``margins`` a length rule applies only when neighbouring keys are that far apart."""
    numbers = [it.number for it in items]
    if rule == "FIX":
        return list(params["order"])
    if rule == "REVERSE":
        return numbers[::-1]
    if rule == "ODD_EVEN":
        return [n for n in numbers if n % 2] + [n for n in numbers if not n % 2]
    if rule == "EVEN_ODD":
        return [n for n in numbers if not n % 2] + [n for n in numbers if n % 2]
    return _sorted_order(rule, items, margins)[0]


def can_differ(rule: str, k: int) -> bool:
    """Whether ``rule`` can ask for an order other than the given one for k instructions
    (ODD_EVEN keeps two instructions in their order)."""
    return k > 1 and not (rule == "ODD_EVEN" and k == 2)


def has_ties(rule: str, items: list[Item]) -> bool:
    if rule not in SORT_RULES:
        return False
    keys = [SORT_RULES[rule][0](it.text) for it in items]
    return len(set(keys)) < len(keys)


def choose(
    rng: Rng,
    pack: RulePack,
    items: list[Item],
    numbered: bool,
    passed: list[Passed] | None = None,
) -> RuleChoice | None:
    """Pick a permute rule uniformly among those that apply to these instructions; rules drawn
    first that do not apply are added to ``passed`` with the reason."""
    cfg = pack.permute
    candidates = list(PERMUTE_RULES)
    rng.shuffle(candidates)
    numbers = [it.number for it in items]
    for rule in candidates:
        reason = ""
        params: dict[str, Any] = {}
        order: list[int] | None = None
        if rule in NEEDS_NUMBERS and not numbered:
            reason = "numbers"
        elif rule == "FIX":
            order = list(numbers)
            while order == numbers:
                rng.shuffle(order)
            params["order"] = order
        elif rule in SORT_RULES:
            order, reason = _sorted_order(rule, items, pack.margins)
        else:
            order = expected_order(rule, items, params)
        if not reason and order == numbers and not cfg["identity_orders"]:
            reason = "identity"
        if reason:
            if passed is not None:
                passed.append(Passed(rule, reason))
            continue
        assert order is not None  # a rule without an order says why (reason)
        phrasing = rng.choice(cfg["rules"][rule])
        if rule == "FIX":
            styles = pack.derived.get("order_styles")
            if styles is None:
                styles = pack.derived["order_styles"] = order_styles(cfg)
            open_, close = rng.choice(styles[0])
            sep = rng.choice(styles[1])
            phrasing = phrasing.format(order=open_ + sep.join(map(str, order)) + close)
        if has_ties(rule, items):
            phrasing = f"{phrasing} {rng.choice(cfg['tie_break'])}"
        return RuleChoice("permute", rule, phrasing, order, [], params)
    return None


def order_styles(section: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """The order brackets and separators of a pack's "permute" section that keep a FIX order
    plain numbers: no bracket a label or a comparison uses (``<2>1>``, ``[[1 > 2]]``), no
    separator that reads as a comparison or as part of a number. Older packs hold such
    entries; they are never drawn."""
    brackets = [
        pair
        for pair in section["order_brackets"]
        if not any(ch in "".join(pair) for ch in ORDER_FORBIDDEN + "0123456789")
    ]
    separators = [
        sep
        for sep in section["order_separators"]
        if sep.strip() not in COMPARISONS and not any(ch.isdigit() for ch in sep)
    ]
    return brackets, separators


def check(
    rule: str, items: list[Item], params: dict[str, Any], answer_order: list[int], numbered: bool
) -> str | None:
    """Why a sample's stated order is not what ``rule`` gives for these instructions (None: it is).

    The same :func:`expected_order` that composed the sample re-derives it, so generation and
    verification share one definition of every rule (and of words and letters). Margins are a
    choice of what to draw, not part of a rule's truth, so they are not re-checked here.
    """
    if rule not in PERMUTE_RULES:
        return f"unknown permute rule {rule!r}"
    if rule in NEEDS_NUMBERS and not numbered:
        return f"{rule} names instructions by number, but the sample is unnumbered"
    numbers = [it.number for it in items]
    if rule == "FIX":
        order = params.get("order") if isinstance(params, dict) else None
        if not isinstance(order, list) or sorted(order) != numbers:
            return f"FIX needs rule_params.order, a reordering of {format_numbers(numbers)}"
        if order == numbers:
            return "FIX must state an order other than the given one"
    expected = expected_order(rule, items, params)
    if expected is None:
        return f"{rule} does not apply to these instructions"
    if list(answer_order) != expected:
        return (
            f"{rule} orders these instructions {format_numbers(expected)}, "
            f"the spec says {format_numbers(answer_order)}"
        )
    return None


def check_spec(spec: MosaicSpec, items: list[Item]) -> str | None:
    """:func:`check` of a whole spec: a permute sample skips nothing."""
    if spec.masked:
        return "a permute sample skips nothing"
    numbered = spec.numbering is not None
    return check(spec.rule or "", items, spec.rule_params, spec.answer_order, numbered)


def check_pack(c: PackChecker, section: Any) -> None:
    """The rule pack's "permute" section: phrasings of every rule, order brackets, tie breaks."""
    c.pairs(c.get(section, "order_brackets", "permute"), "permute.order_brackets", allow_empty=True)
    c.texts(c.get(section, "order_separators", "permute"), "permute.order_separators", set())
    # an order reads as plain numbers: entries that would not are never drawn; a pack must
    # keep one of each
    brackets, separators = order_styles(section)
    if not brackets:
        c.fail("permute.order_brackets", "every pair reads as a label or a comparison")
    if not separators:
        c.fail("permute.order_separators", "every separator reads as a comparison or a number")
    rules = c.get(section, "rules", "permute")
    for rule in PERMUTE_RULES:
        fields = {"order"} if rule == "FIX" else set()
        c.texts(c.get(rules, rule, "permute.rules"), f"permute.rules.{rule}", fields)
    c.known_rules(rules, PERMUTE_RULES, "permute.rules")
    c.texts(c.get(section, "tie_break", "permute"), "permute.tie_break", set())
    if not isinstance(c.get(section, "identity_orders", "permute"), bool):
        c.fail("permute.identity_orders", "expected true or false")


def pack_pools(section: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    pools = [
        ("permute.order_separators", section, "order_separators"),
        ("permute.tie_break", section, "tie_break"),
    ]
    return pools + [(f"permute.rules.{r}", section["rules"], r) for r in PERMUTE_RULES]


STRATEGY = register(
    Strategy("permute", PERMUTE_RULES, check_spec, choose, MEASURED, check_pack, pack_pools)
)
