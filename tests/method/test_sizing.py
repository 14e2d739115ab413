import hashlib
import random
from statistics import mean

import pytest

from mosaic_it.method.sizing import UNLIMITED, WRAP_MODES, draw_k
from mosaic_it.rng import Rng, derive_seed

# mean k for M = 10, from the method's definitions
EXPECTED_MEAN = {
    "uniform": 5.5,
    "fix_max": 10,
    "exp": 9.42,
    "pareto": 9.15,
    "lognormal": 8.98,
    "logistic2": 7.84,
}


@pytest.mark.parametrize("mode", sorted(EXPECTED_MEAN))
def test_wrap_mode_means_and_range(mode):
    ks = [draw_k(Rng(7, mode, i), mode, 10) for i in range(20000)]
    assert min(ks) >= 1 and max(ks) <= 10
    assert mean(ks) == pytest.approx(EXPECTED_MEAN[mode], abs=0.06)


def test_uniform_covers_every_k_evenly():
    ks = [draw_k(Rng(3, i), "uniform", 10) for i in range(30000)]
    for k in range(1, 11):
        assert ks.count(k) / len(ks) == pytest.approx(0.1, abs=0.01)


def test_max_length_is_unbounded_and_unknown_mode_is_an_error():
    assert draw_k(Rng(1), "max_length", 10) == UNLIMITED
    with pytest.raises(ValueError, match="unknown wrap mode"):
        draw_k(Rng(1), "gaussian", 10)
    assert set(WRAP_MODES) == set(EXPECTED_MEAN) | {"max_length"}


def test_rng_is_a_pure_function_of_its_path():
    a, b = Rng(1, "epoch", 2), Rng(1, "epoch", 2)
    assert [a.random() for _ in range(5)] == [b.random() for _ in range(5)]
    assert Rng(1, "epoch", 2).random() != Rng(1, "epoch", 3).random()
    items = list(range(50))
    Rng(9).shuffle(items)
    assert sorted(items) == list(range(50)) and items != list(range(50))


def test_rng_is_random_random_seeded_by_the_blake2b_of_its_path():
    """The stream every seed of the project reproduces: random.Random seeded with the first 8
    bytes (little-endian) of the BLAKE2b of the path's parts joined by "/", and the draws
    built on random() alone (below, choice, shuffle) as they have always been written."""
    for path in [(), (42,), (42, "epoch", 3, "sample", 17, "plan"), tuple(range(20)), (True, 1.5)]:
        text = "/".join(map(str, path)).encode()
        seed = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
        assert derive_seed(*path) == seed
        mine, reference = Rng(*path), random.Random(seed)
        assert [mine.random() for _ in range(700)] == [reference.random() for _ in range(700)]
        mine, reference = Rng(*path), random.Random(seed)

        def below(n: int) -> int:
            i = int(reference.random() * n)
            return i if i < n else n - 1

        items, expected = list(range(30)), list(range(30))
        mine.shuffle(items)
        for i in range(len(expected) - 1, 0, -1):
            j = below(i + 1)
            expected[i], expected[j] = expected[j], expected[i]
        assert items == expected
        assert [mine.choice("abcdefg") for _ in range(50)] == [
            "abcdefg"[below(7)] for _ in range(50)
        ]
    with pytest.raises(ValueError):
        Rng(1).choice([])
