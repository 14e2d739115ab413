"""Permute: the answers come in an order other than the instructions'.

Responses keep their original number labels. Sorting rules sort stably; when two
instructions tie on the sort key, the meta-instruction says that tied instructions keep their
given order, so the stated rule always determines one order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..rng import Rng
from ..rulepack import PERMUTE_RULES, RulePack
from .base import Item, RuleChoice, first_letter, format_numbers, word_count

# rule -> (sort key, descending)
SORT_RULES: dict[str, tuple[Callable[[str], Any], bool]] = {
    "ALPHA": (first_letter, False),
    "REVERSE_ALPHA": (first_letter, True),
    "LENGTH_WORD": (word_count, False),
    "REVERSE_LENGTH_WORD": (word_count, True),
    "LENGTH_CHAR": (len, False),
    "REVERSE_LENGTH_CHAR": (len, True),
}
# rules that name instructions by number: only for numbered samples
NEEDS_NUMBERS = frozenset({"FIX", "ODD_EVEN", "EVEN_ODD"})


def expected_order(rule: str, items: list[Item], params: dict[str, Any]) -> list[int] | None:
    """The answer order the rule demands for these instructions (None: rule not applicable)."""
    numbers = [it.number for it in items]
    if rule == "FIX":
        return list(params["order"])
    if rule == "REVERSE":
        return numbers[::-1]
    if rule == "ODD_EVEN":
        return [n for n in numbers if n % 2] + [n for n in numbers if not n % 2]
    if rule == "EVEN_ODD":
        return [n for n in numbers if not n % 2] + [n for n in numbers if n % 2]
    key, descending = SORT_RULES[rule]
    keys = [key(it.text) for it in items]
    if any(k is None for k in keys) or len(set(keys)) < 2:
        return None  # not every instruction has a key, or the order would say nothing
    # sorted() stays stable with reverse=True: ties keep the given order, as stated
    ranked = sorted(zip(keys, numbers), key=lambda kv: kv[0], reverse=descending)
    return [n for _, n in ranked]


def has_ties(rule: str, items: list[Item]) -> bool:
    if rule not in SORT_RULES:
        return False
    keys = [SORT_RULES[rule][0](it.text) for it in items]
    return len(set(keys)) < len(keys)


def choose(rng: Rng, pack: RulePack, items: list[Item], numbered: bool) -> RuleChoice | None:
    """Pick a permute rule uniformly among those that apply to these instructions."""
    cfg = pack.permute
    candidates = [r for r in PERMUTE_RULES if numbered or r not in NEEDS_NUMBERS]
    rng.shuffle(candidates)
    for rule in candidates:
        params: dict[str, Any] = {}
        if rule == "FIX":
            order = [it.number for it in items]
            identity = list(order)
            while order == identity:
                rng.shuffle(order)
            params["order"] = order
        order = expected_order(rule, items, params)
        if order is None:
            continue
        phrasing = rng.choice(cfg["rules"][rule])
        if rule == "FIX":
            open_, close = rng.choice(cfg["order_brackets"])
            sep = rng.choice(cfg["order_separators"])
            phrasing = phrasing.format(order=open_ + sep.join(map(str, order)) + close)
        if has_ties(rule, items):
            phrasing = f"{phrasing} {rng.choice(cfg['tie_break'])}"
        return RuleChoice("permute", rule, phrasing, order, [], params)
    return None


def check(
    rule: str, items: list[Item], params: dict[str, Any], answer_order: list[int], numbered: bool
) -> str | None:
    """Why a sample's stated order is not what ``rule`` gives for these instructions (None: it is).

    The same :func:`expected_order` that composed the sample re-derives it, so generation and
    verification share one definition of every rule.
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
        return (f"{rule} orders these instructions {format_numbers(expected)}, "
                f"the spec says {format_numbers(answer_order)}")
    return None
