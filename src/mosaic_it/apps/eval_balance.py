"""The balance of an evaluation set: equal shares of the N items for the strategies, then
for each strategy's rules, then for each rule's instruction counts, and the table of what was
asked and made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mosaic_it.limits import MAX_EVAL_INSTRUCTIONS, MAX_ITEMS, bound
from mosaic_it.method.strategies import permute
from mosaic_it.method.strategies.maskout import MASKOUT_RULES
from mosaic_it.method.strategies.permute import PERMUTE_RULES
from mosaic_it.rng import Rng


def eval_rules() -> list[tuple[str, str | None]]:
    """The strategy/rule rows of the balance table: format only, then every rule."""
    format_only: list[tuple[str, str | None]] = [("format", None)]
    return (
        format_only
        + [("permute", rule) for rule in PERMUTE_RULES]
        + [("maskout", rule) for rule in MASKOUT_RULES]
    )


def rule_name(strategy: str, rule: str | None) -> str:
    return strategy if rule is None else f"{strategy}.{rule}"


@dataclass
class Cell:
    """One (strategy/rule, k) cell of the balance table."""

    strategy: str
    rule: str | None
    k: int
    asked: int
    made: int = 0

    @property
    def name(self) -> str:
        return rule_name(self.strategy, self.rule)


@dataclass
class EvalSet:
    items: list[dict[str, Any]]
    cells: list[Cell]
    asked: int
    max_instructions: int
    notes: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # records, by what they refer to
    reused: int = 0  # record uses that repeat an earlier item's record
    rejected: dict[str, int] = field(default_factory=dict)  # draws, by why they were not kept

    def balance(self) -> dict[str, Any]:
        """Counts per cell, per strategy/rule and per instruction count: asked and made."""
        by_rule: dict[str, dict[str, int]] = {}
        by_k: dict[str, dict[str, int]] = {}
        by_strategy: dict[str, dict[str, int]] = {}
        for c in self.cells:
            for table, key in ((by_rule, c.name), (by_k, str(c.k)), (by_strategy, c.strategy)):
                row = table.setdefault(key, {"asked": 0, "made": 0})
                row["asked"] += c.asked
                row["made"] += c.made
        return {
            "asked": self.asked,
            "made": len(self.items),
            "max_instructions": self.max_instructions,
            "records_left_out": self.left_out,
            "records_reused": self.reused,
            "draws_rejected": self.rejected,
            "by_strategy": by_strategy,
            "by_rule": by_rule,
            "by_instructions": by_k,
            "cells": [
                {"strategy": c.strategy, "rule": c.rule, "k": c.k, "asked": c.asked, "made": c.made}
                for c in self.cells
            ],
        }

    def render_balance(self) -> str:
        """The balance table: items made per strategy/rule (rows) and instruction count."""
        ks = sorted({c.k for c in self.cells})
        grid = {(c.name, c.k): c for c in self.cells}
        names = list(dict.fromkeys(c.name for c in self.cells))
        width = max(len(n) for n in names + ["strategy/rule"])
        head = f"{'strategy/rule':{width}} " + " ".join(f"{'k=' + str(k):>6}" for k in ks)
        lines = [head + f" {'total':>7}"]

        def cell_text(made: int, asked: int) -> str:
            return str(made) if made == asked else f"{made}/{asked}"

        for name in names:
            row = [grid.get((name, k)) for k in ks]  # None: a cell that cannot hold an item
            made = sum(c.made for c in row if c)
            asked = sum(c.asked for c in row if c)
            counts = " ".join(f"{cell_text(c.made, c.asked) if c else '-':>6}" for c in row)
            lines.append(f"{name:{width}} {counts} {cell_text(made, asked):>7}")
        totals = [
            (
                sum(c.made for c in self.cells if c.k == k),
                sum(c.asked for c in self.cells if c.k == k),
            )
            for k in ks
        ]
        lines.append(
            f"{'total':{width}} "
            + " ".join(f"{cell_text(m, a):>6}" for m, a in totals)
            + f" {cell_text(len(self.items), self.asked):>7}"
        )
        per_strategy: dict[str, int] = {}
        for c in self.cells:
            per_strategy[c.strategy] = per_strategy.get(c.strategy, 0) + c.made
        lines.append("per strategy: " + ", ".join(f"{s} {m}" for s, m in per_strategy.items()))
        return "\n".join(lines)


def _share(total: int, keys: list[Any], rng: Rng) -> dict[Any, int]:
    """``total`` split equally over ``keys``; the remainder goes to keys drawn at random."""
    base, extra = divmod(total, len(keys))
    lucky = list(range(len(keys)))
    rng.shuffle(lucky)
    share = {key: base for key in keys}
    for i in lucky[:extra]:
        share[keys[i]] += 1
    return share


def possible(strategy: str, rule: str | None, k: int) -> bool:
    """Whether a (rule, k) cell can hold an item that tests something: a Permute rule must be
    able to ask for another order than the given one (ODD_EVEN over 2 instructions cannot)."""
    return strategy != "permute" or (rule is not None and permute.can_differ(rule, k))


def check_counts(n: int, max_instructions: int) -> None:
    """Refuse an item count or instruction count no evaluation set can have."""
    bound(
        "n",
        n,
        at_least=1,
        at_most=MAX_ITEMS,
        whole=True,
        why="the whole set is held in memory until it is written",
    )
    bound(
        "max_instructions",
        max_instructions,
        at_least=2,
        at_most=MAX_EVAL_INSTRUCTIONS,
        whole=True,
        why="an evaluation mosaic has 2 instructions or more, each count a cell of its own",
    )


def allocate(
    n: int,
    max_instructions: int,
    seed: int,
    strategies: tuple[str, ...] | None = None,
) -> list[Cell]:
    """Equal shares of ``n`` for the strategies (all, or those named), then for each strategy's
    rules, then for each rule's instruction counts; remainders go to shares drawn at random."""
    check_counts(n, max_instructions)
    # (strategy -> rule -> the instruction counts its items can have); a rule with none is left
    # out, its share going to the strategy's other rules
    counts: dict[str, dict[str | None, list[int]]] = {}
    for strategy, rule in eval_rules():
        if strategies is not None and strategy not in strategies:
            continue
        ks = [k for k in range(2, max_instructions + 1) if possible(strategy, rule, k)]
        if ks:
            counts.setdefault(strategy, {})[rule] = ks
    cells = []
    by_strategy = _share(n, list(counts), Rng(seed, "eval", "strategies"))
    for strategy, rules in counts.items():
        by_rule = _share(by_strategy[strategy], list(rules), Rng(seed, "eval", strategy))
        for rule, ks in rules.items():
            by_k = _share(by_rule[rule], ks, Rng(seed, "eval", strategy, str(rule)))
            cells += [Cell(strategy, rule, k, by_k[k]) for k in ks]
    return cells
