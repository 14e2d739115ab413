"""Maskout: some instructions must be left unanswered; the rest keep their order.

For FIX, WORD_LONG and WORD_SHORT the number of skipped instructions is
``n = max(int(k * r), 1)`` with ``r ~ Uniform(0.1, 0.5)``. WORD_LONG/WORD_SHORT count words as
:mod:`mosaic_it.method.textunits` defines them, over everything written for an instruction (its
input
included), and apply only when the n longest (shortest) instructions are unambiguous: no tie at
the cut, and when drawn, the two sides of the cut at least the rule pack's margins apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mosaic_it.method.strategies.base import (
    Item,
    Passed,
    RuleChoice,
    Strategy,
    apart,
    format_numbers,
    join_numbers,
    register,
    words_apart,
)
from mosaic_it.method.textunits import word_count
from mosaic_it.rng import Rng

if TYPE_CHECKING:
    from mosaic_it.method.pack import PackChecker, RulePack
    from mosaic_it.records import MosaicSpec

MASKOUT_RULES = ("FIX", "WORD_LONG", "WORD_SHORT", "ODD", "EVEN")

NEEDS_NUMBERS = frozenset({"FIX", "ODD", "EVEN"})
MEASURED = frozenset({"WORD_LONG", "WORD_SHORT"})  # their phrasing says the input counts


def skip_count(rng: Rng, k: int) -> int:
    return max(int(k * rng.uniform(0.1, 0.5)), 1)


def _masked(
    rule: str, items: list[Item], params: dict[str, Any], margins: dict[str, float] | None
) -> tuple[list[int] | None, str]:
    """The instruction numbers the rule says to skip, or None and why it does not apply."""
    numbers = [it.number for it in items]
    if rule == "FIX":
        masked = sorted(params["positions"])
    elif rule == "ODD":
        masked = [n for n in numbers if n % 2]
    elif rule == "EVEN":
        masked = [n for n in numbers if not n % 2]
    else:
        n = params["n"]
        counts = sorted(
            ((word_count(it.text), it.number) for it in items), reverse=rule == "WORD_LONG"
        )
        if n >= len(items):
            return None, "equal"
        if counts[n - 1][0] == counts[n][0]:
            return None, "tie"  # "the n longest" would not name one set
        if not apart(counts[n - 1][0], counts[n][0], margins, "words"):
            return None, "margin"
        masked = sorted(number for _, number in counts[:n])
        if margins is not None:
            # the cut must hold as clearly under every other common reading of a word
            cut = [it.text for it in items if it.number in masked]
            rest = [it.text for it in items if it.number not in masked]
            fewer, more = (rest, cut) if rule == "WORD_LONG" else (cut, rest)
            if not words_apart(fewer, more, margins):
                return None, "reading"
    if not masked or len(masked) >= len(items):
        return None, "equal"  # something must be skipped and something answered
    return masked, ""


def expected_masked(
    rule: str, items: list[Item], params: dict[str, Any], margins: dict[str, float] | None = None
) -> list[int] | None:
    """The instruction numbers the rule says to skip (None: rule not applicable). With
    ``margins`` a word rule applies only when the two sides of its cut are that far apart."""
    return _masked(rule, items, params, margins)[0]


def choose(
    rng: Rng,
    pack: RulePack,
    items: list[Item],
    numbered: bool,
    passed: list[Passed] | None = None,
) -> RuleChoice | None:
    """Pick a maskout rule uniformly among those that apply to these instructions; rules drawn
    first that do not apply are added to ``passed`` with the reason."""
    cfg = pack.maskout
    candidates = list(MASKOUT_RULES)
    rng.shuffle(candidates)
    k = len(items)
    for rule in candidates:
        params: dict[str, Any] = {}
        if rule in NEEDS_NUMBERS and not numbered:
            masked, reason = None, "numbers"
        else:
            if rule == "FIX":
                params["positions"] = sorted(
                    rng.sample([it.number for it in items], skip_count(rng, k))
                )
            elif rule in MEASURED:
                params["n"] = skip_count(rng, k)
            masked, reason = _masked(rule, items, params, pack.margins)
        if masked is None:
            if passed is not None:
                passed.append(Passed(rule, reason))
            continue
        many = len(masked) > 1
        phrasing = rng.choice(cfg["rules"][rule]["many" if many else "one"])
        fields: dict[str, Any] = {}
        if rule == "FIX":
            fields["positions"] = join_numbers(
                masked, cfg["list_separator"], cfg["list_last_separator"]
            )
        elif rule in ("WORD_LONG", "WORD_SHORT") and many:
            fields["n"] = params["n"]
        order = [it.number for it in items if it.number not in masked]
        return RuleChoice("maskout", rule, phrasing.format(**fields), order, masked, params)
    return None


def check(
    rule: str,
    items: list[Item],
    params: dict[str, Any],
    answer_order: list[int],
    masked: list[int],
    numbered: bool,
) -> str | None:
    """Why a sample's stated skips are not what ``rule`` gives for these instructions (None: they
    are). The same :func:`expected_masked` that composed the sample re-derives them."""
    if rule not in MASKOUT_RULES:
        return f"unknown maskout rule {rule!r}"
    if rule in NEEDS_NUMBERS and not numbered:
        return f"{rule} names instructions by number, but the sample is unnumbered"
    numbers = [it.number for it in items]
    params = params if isinstance(params, dict) else {}
    if rule == "FIX":
        positions = params.get("positions")
        if not isinstance(positions, list) or not set(positions) <= set(numbers):
            return (
                "FIX needs rule_params.positions, instruction numbers among "
                f"{format_numbers(numbers)}"
            )
    if rule in ("WORD_LONG", "WORD_SHORT"):
        n = params.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            return f"{rule} needs rule_params.n, a positive number of instructions to skip"
    expected = expected_masked(rule, items, params)
    if expected is None:
        return f"{rule} does not apply to these instructions"
    if sorted(masked) != expected:
        return (
            f"{rule} skips instruction(s) {format_numbers(expected)} here, "
            f"the spec says {format_numbers(sorted(masked))}"
        )
    rest = [n for n in numbers if n not in expected]
    if list(answer_order) != rest:
        return (
            f"the instructions not skipped are answered in their given order "
            f"{format_numbers(rest)}, the spec says {format_numbers(answer_order)}"
        )
    return None


def check_spec(spec: MosaicSpec, items: list[Item]) -> str | None:
    """:func:`check` of a whole spec."""
    numbered = spec.numbering is not None
    rule, params = spec.rule or "", spec.rule_params
    return check(rule, items, params, spec.answer_order, spec.masked, numbered)


def check_pack(c: PackChecker, section: Any) -> None:
    """The rule pack's "maskout" section: each rule's phrasings for one and for many skips."""
    for key in ("list_separator", "list_last_separator"):
        if not isinstance(c.get(section, key, "maskout"), str):
            c.fail(f"maskout.{key}", "expected a string")
    rules = c.get(section, "rules", "maskout")
    for rule in MASKOUT_RULES:
        entry = c.get(rules, rule, "maskout.rules")
        for number in ("one", "many"):
            fields = {"FIX": {"positions"}, "WORD_LONG": {"n"}, "WORD_SHORT": {"n"}}.get(
                rule, set()
            )
            if number == "one":
                fields = fields - {"n"}
            where = f"maskout.rules.{rule}"
            c.texts(c.get(entry, number, where), f"{where}.{number}", fields)
    c.known_rules(rules, MASKOUT_RULES, "maskout.rules")


def pack_pools(section: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    return [
        (f"maskout.rules.{r}.{number}", section["rules"][r], number)
        for r in MASKOUT_RULES
        for number in ("one", "many")
    ]


STRATEGY = register(
    Strategy("maskout", MASKOUT_RULES, check_spec, choose, MEASURED, check_pack, pack_pools)
)
