"""Admission: which records can be mosaicked at all, decided once, up front.

A record that cannot fit the budget even alone, with the smallest layout, is rejected once and
reported; every other record appears exactly once per epoch. The bounds decide most records;
one near the edge is composed alone and counted exactly. What an admitted record's texts rule
out for layouts is noted then too (:class:`~mosaic_it.method.fitting.FitFacts`), once for the
whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from mosaic_it.engine.bounds import TokenBounds
from mosaic_it.engine.sample_count import SampleCounter
from mosaic_it.method.compose import SamplePlan, compose
from mosaic_it.method.fitting import FitFacts
from mosaic_it.method.layout import plain_layout
from mosaic_it.method.pack import RulePack
from mosaic_it.records import Record


@dataclass
class Reject:
    """A record left out of the run, and why."""

    index: int
    id: object
    reason: str
    detail: str
    tokens: int | None = None

    def to_dict(self) -> dict[str, object]:
        d = {"index": self.index, "id": self.id, "reason": self.reason, "detail": self.detail}
        if self.tokens is not None:
            d["tokens"] = self.tokens
        return d


@dataclass
class GroupingStats:
    """How grouping decided: exact counts made, and the fallbacks it took."""

    exact_checks: int = 0
    margin_misses: int = 0
    plain_fallbacks: int = 0
    rule_fallbacks: int = 0

    def add(self, other: GroupingStats, sign: int = 1) -> None:
        """Add (``sign`` -1: take away) another part's counters (an epoch's) to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + sign * getattr(other, f.name))


class Admission:
    """Whether a record fits the budget alone (``budget``: the most tokens a sample may have)."""

    def __init__(
        self,
        bounds: TokenBounds,
        counter: SampleCounter,
        stats: GroupingStats,
        *,
        pack: RulePack,
        budget: int,
    ) -> None:
        self.bounds = bounds
        self.counter = counter
        self.stats = stats
        self.pack = pack
        self.budget = budget
        self._plain = plain_layout(pack)
        self.facts = FitFacts(pack)

    def fits_alone(self, index: int, record: Record, facts: int) -> tuple[bool, int | None]:
        """Whether a record fits the budget alone with the smallest layout, and its count when
        that was needed (outside the bounds, or counted exactly near the edge). The ``facts``
        of a record that fits (:meth:`.FitFacts.facts_of` its texts) are noted."""
        low, high = self.bounds.single(index, record.system)
        if high <= self.budget:
            self.facts.note(index, facts)
            return True, None
        if low > self.budget:
            return False, low
        plan = SamplePlan((), self._plain, "format")
        template = self.bounds.template.name
        sample = compose(self.pack, plan, [record], 0, layout=self._plain, template=template)
        self.stats.exact_checks += 1
        n = self.counter.exact(sample, [index])
        if n <= self.budget:
            self.facts.note(index, facts)
        return n <= self.budget, n
