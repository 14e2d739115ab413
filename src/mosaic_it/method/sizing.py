"""How many instructions a sample is offered (the wrap modes of the method).

With M the maximum, ``int()`` truncating toward zero and "redraw" meaning draw again until the
condition holds:

==========  =======================================================  ==============
mode        k                                                        mean k (M=10)
==========  =======================================================  ==============
uniform     uniform integer in [1, M]                                5.50
fix_max     M                                                        10
max_length  every remaining record; only the token budget stops it   -
exp         x ~ Exponential(1), redraw until x < M; k = M - int(x)   9.42
pareto      x ~ Lomax(1) - 1, redraw until x < M; k = M - int(x)     9.15
lognormal   x ~ LogNormal(0, 1), redraw until x < M; k = M - int(x)  8.98
logistic2   x ~ Logistic(0, 2), redraw until 0 < x < M; k = M - int(x) 7.84
==========  =======================================================  ==============

The token budget can only make a sample smaller than the k drawn here.
"""

from __future__ import annotations

from collections.abc import Callable

from mosaic_it.errors import OptionError
from mosaic_it.rng import Rng

UNLIMITED = 1 << 62


def _truncated(draw: Callable[[Rng], float], positive: bool = False) -> Callable[[Rng, int], int]:
    def k_of(rng: Rng, m: int) -> int:
        while True:
            x = draw(rng)
            if x < m and (x > 0 or not positive):
                return m - int(x)

    return k_of


WRAP_MODES: dict[str, Callable[[Rng, int], int]] = {
    "uniform": lambda rng, m: rng.integer(1, m),
    "fix_max": lambda rng, m: m,
    "max_length": lambda rng, m: UNLIMITED,
    "exp": _truncated(Rng.exponential),
    "pareto": _truncated(lambda rng: rng.lomax() - 1.0),  # numpy pareto(1) - 1: may be < 0
    "lognormal": _truncated(Rng.lognormal),
    "logistic2": _truncated(lambda rng: rng.logistic(2.0), positive=True),
}


def draw_k(rng: Rng, mode: str, max_instructions: int) -> int:
    """The number of instructions offered to one sample (before the budget)."""
    try:
        return WRAP_MODES[mode](rng, max_instructions)
    except KeyError:
        raise OptionError(
            f"unknown wrap mode {mode!r}; choose from {', '.join(WRAP_MODES)}"
        ) from None
