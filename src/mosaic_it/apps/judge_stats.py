"""The arithmetic of ``mosaic-it judge``: tallies per order and combined, the paper's winning
score, the position-consistency rate and bootstrap intervals, per test set.

Each judged unit (a prompt's turn) has up to two outcomes for answers 1 against answers 2, one
per order of the answers: ``win``, ``tie``, ``lose``, or ``None`` (the judge's verdict could not
be read, even after the retries). The two orders combine as in the paper's protocol (Li et al.'s
pairwise comparison that Mosaic-IT follows): a win in both orders, or a win in one and a tie in
the other, is a win; the same for a loss; a win in one and a loss in the other, or two ties, is a
tie. A unit with an unreadable verdict in either order is counted apart, never guessed.

* winning score = (wins - losses) / n + 1, in [0, 2]; 1 means as good;
* win rate = (wins + ties / 2) / n (AlpacaEval's way of counting a tie);
* position consistency = units whose two orders give the same outcome / units with both read;
* 95% intervals: percentile bootstrap over prompts (a prompt's turns stay together), seeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mosaic_it.errors import EnvironmentFault

__all__ = ["OUTCOMES", "UnitResult", "combine", "require_scipy", "summarize"]

OUTCOMES = ("win", "tie", "lose")
ALL = "all"


@dataclass(frozen=True)
class UnitResult:
    """One prompt's turn, judged in each order: ``first`` with answers 1 shown first,
    ``second`` with answers 2 shown first; outcomes are those of answers 1."""

    item: str
    turn: int
    test_set: str
    first: str | None
    second: str | None
    chars_1: int = 0
    chars_2: int = 0


def require_scipy() -> None:
    """Stop before any judge call where the intervals could not be computed afterwards."""
    try:
        import numpy  # noqa: F401
        import scipy.stats  # noqa: F401
    except ImportError:
        raise EnvironmentFault(
            'the judge\'s intervals need numpy and scipy: pip install "mosaic-it[judge]"'
        ) from None


def combine(first: str | None, second: str | None) -> str | None:
    """The outcome of a unit over both orders (see the module doc); None if either is unread."""
    if first is None or second is None:
        return None
    pair = {first, second}
    if pair <= {"win", "tie"} and "win" in pair:
        return "win"
    if pair <= {"lose", "tie"} and "lose" in pair:
        return "lose"
    return "tie"


def summarize(units: Sequence[UnitResult], seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """Every figure of the module doc, for all units and per test set (when there are several)."""
    sets = sorted({u.test_set for u in units})
    out = {ALL: _figures(units, seed, resamples)}
    if len(sets) > 1:
        for name in sets:
            out[name] = _figures([u for u in units if u.test_set == name], seed, resamples)
    return out


def _figures(units: Sequence[UnitResult], seed: int, resamples: int) -> dict[str, Any]:
    combined = [combine(u.first, u.second) for u in units]
    read = [(u, c) for u, c in zip(units, combined) if c is not None]
    n = len(read)
    tally = {o: sum(1 for _, c in read if c == o) for o in OUTCOMES}
    both = [u for u in units if u.first is not None and u.second is not None]
    agree = sum(1 for u in both if u.first == u.second)
    score = {"win": 2.0, "tie": 1.0, "lose": 0.0}
    rate = {"win": 1.0, "tie": 0.5, "lose": 0.0}
    return {
        "prompts": len({u.item for u in units}),
        "units": len(units),
        "orders": {
            "answers_1_first": _order_tally(u.first for u in units),
            "answers_2_first": _order_tally(u.second for u in units),
        },
        "combined": {**tally, "n": n, "unreadable": len(units) - n},
        "winning_score": {
            "value": round((tally["win"] - tally["lose"]) / n + 1, 4) if n else None,
            "ci95": _bootstrap([(u.item, score[c]) for u, c in read], seed, resamples),
        },
        "win_rate": {
            "value": round((tally["win"] + tally["tie"] / 2) / n, 4) if n else None,
            "ci95": _bootstrap([(u.item, rate[c]) for u, c in read], seed, resamples),
        },
        "position_consistency": {
            "value": round(agree / len(both), 4) if both else None,
            "agree": agree,
            "n": len(both),
        },
        "mean_chars": {
            "answers_1": _mean(u.chars_1 for u in units),
            "answers_2": _mean(u.chars_2 for u in units),
        },
    }


def _order_tally(outcomes: Iterable[str | None]) -> dict[str, int]:
    seen = list(outcomes)
    return {
        **{o: sum(1 for x in seen if x == o) for o in OUTCOMES},
        "unreadable": sum(1 for x in seen if x is None),
    }


def _mean(values: Iterable[int]) -> float | None:
    seen = list(values)
    return round(sum(seen) / len(seen), 1) if seen else None


def _bootstrap(values: list[tuple[str, float]], seed: int, resamples: int) -> list[float] | None:
    """95% percentile interval of the mean value per unit, resampling prompts (all the turns of
    a prompt together) with replacement; None below two prompts."""
    import numpy as np
    from scipy.stats import bootstrap

    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for item, value in values:
        sums[item] = sums.get(item, 0.0) + value
        counts[item] = counts.get(item, 0) + 1
    if len(sums) < 2:
        return None
    s = np.array([sums[k] for k in sums])
    c = np.array([counts[k] for k in sums], dtype=float)
    if np.allclose(s / c, s[0] / c[0]):  # every prompt alike: no spread to resample
        v = round(float(s.sum() / c.sum()), 4)
        return [v, v]
    result = bootstrap(
        (s, c),
        lambda x, y, axis=-1: x.sum(axis=axis) / y.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return [round(float(low), 4), round(float(high), 4)]
