from statistics import mean

import pytest

from mosaic_it.method.sizing import UNLIMITED, WRAP_MODES, draw_k
from mosaic_it.rng import Rng

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
