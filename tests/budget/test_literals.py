"""The trie expression of many literal strings finds what their alternation finds."""

import random
import re

from mosaic_it.budget.literals import literal_pattern


def alternation(strings):
    return re.compile("|".join(map(re.escape, sorted(strings, key=lambda s: (-len(s), s)))))


def test_leftmost_then_longest_as_the_sorted_alternation():
    rng = random.Random(3)
    alphabet = "ab<>|_.*\\\u00e9\u4e2d"
    for _ in range(300):
        count = rng.randint(1, 40)
        strings = {
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5))) for _ in "x" * count
        }
        expected, found = alternation(strings), literal_pattern(strings)
        for _ in range(50):
            text = "".join(rng.choice(alphabet + " x") for _ in range(rng.randint(0, 30)))
            assert [m.span() for m in found.finditer(text)] == [
                m.span() for m in expected.finditer(text)
            ]
            assert found.split(text) == expected.split(text)


def test_prefixes_long_strings_and_nothing():
    found = literal_pattern(["<unused1>", "<unused10>", "<unused100>", "<eos>", "", "x" * 5000])
    assert found.findall("<unused10> <unused1000> <unused100> <unused1>x <eos>") == [
        "<unused10>",
        "<unused100>",
        "<unused1>",
        "<eos>",
    ]
    assert found.search("y" + "x" * 5000).group() == "x" * 5000
    assert literal_pattern([]) is None and literal_pattern([""]) is None
