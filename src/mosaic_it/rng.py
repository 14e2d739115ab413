"""Seeded randomness that stays byte-identical across Python versions.

Python guarantees only that ``Random.random()`` keeps its sequence for a given seed; the
helpers built on it (``randint``, ``shuffle``, ``expovariate`` ...) may change between
releases. Every draw here is derived from ``random()`` alone, and every generator is seeded
from an explicit (seed, epoch, sample) path, never from a shared global state.
"""

from __future__ import annotations

import hashlib
import math
from _random import Random as _Twister
from collections.abc import MutableSequence, Sequence
from typing import TypeVar

T = TypeVar("T")

# "%s/%s/...": a path's text by one formatting (str() of each part, joined by "/"), for
# paths of up to 15 parts; the engine seeds two generators for every sample it builds
_PATH_FORMATS = ["/".join(["%s"] * n) for n in range(16)]


def _seed_of(parts: tuple[object, ...]) -> int:
    n = len(parts)
    form = _PATH_FORMATS[n] if n < len(_PATH_FORMATS) else "/".join(["%s"] * n)
    digest = hashlib.blake2b((form % parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def derive_seed(*parts: object) -> int:
    """A 64-bit seed derived from a path of values, e.g. ``(seed, "epoch", 2, "sample", 17)``."""
    return _seed_of(parts)


class Rng:
    """A small generator over ``random.Random.random()`` with the draws this project needs.

    The Mersenne Twister is ``random.Random``'s own C base class, seeded with the same integer:
    the same stream, without the Python layers ``random.Random`` adds for seeds of other types
    and for its other draws (never used here).
    """

    __slots__ = ("_random",)

    def __init__(self, *path: object) -> None:
        self._random = _Twister(_seed_of(path)).random

    def random(self) -> float:
        return self._random()

    def below(self, n: int) -> int:
        """Uniform integer in [0, n)."""
        if n <= 0:
            raise ValueError("below() needs n >= 1")
        # a comparison rather than min(): this runs for every draw of every sample
        i = int(self._random() * n)
        return i if i < n else n - 1

    def integer(self, low: int, high: int) -> int:
        """Uniform integer in [low, high], both ends included."""
        return low + self.below(high - low + 1)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random()

    def chance(self, p: float) -> bool:
        return self._random() < p

    def choice(self, items: Sequence[T]) -> T:
        n = len(items)
        if n <= 0:
            raise ValueError("below() needs n >= 1")
        i = int(self._random() * n)  # below(n), written out: drawn for every layout
        return items[i if i < n else n - 1]

    def shuffle(self, items: MutableSequence[T]) -> None:
        """Fisher-Yates, in place (below(i + 1) written out: rules are shuffled per sample)."""
        draw = self._random
        for i in range(len(items) - 1, 0, -1):
            j = int(draw() * (i + 1))
            if j > i:
                j = i
            items[i], items[j] = items[j], items[i]

    def sample(self, items: Sequence[T], n: int) -> list[T]:
        pool = list(items)
        for i in range(n):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:n]

    def exponential(self) -> float:
        """Exponential(1)."""
        return -math.log(1.0 - self._random())

    def lomax(self) -> float:
        """Lomax(1), i.e. numpy's ``pareto(1)``: a classical Pareto(1) sample minus 1."""
        return 1.0 / (1.0 - self._random()) - 1.0

    def lognormal(self) -> float:
        """LogNormal(0, 1) via Box-Muller."""
        u1 = 1.0 - self._random()
        u2 = self._random()
        return math.exp(math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2))

    def logistic(self, scale: float) -> float:
        """Logistic(0, scale) by inverting its CDF."""
        u = self._random()
        while u == 0.0:
            u = self._random()
        return scale * math.log(u / (1.0 - u))
