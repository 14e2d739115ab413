"""Each rule's meta-instruction is true of the answers it asks for."""

from collections import Counter

import pytest

from mosaic_it.method.strategies import maskout, permute
from mosaic_it.method.strategies.base import Item, join_numbers
from mosaic_it.method.strategies.maskout import MASKOUT_RULES
from mosaic_it.method.strategies.permute import PERMUTE_RULES
from mosaic_it.method.textunits import char_count, first_letter, word_count
from mosaic_it.rng import Rng

# lengths far enough apart for the pack's margins (at least 2 words / 10 characters / 10%)
TEXTS = [
    "Write a haiku about autumn leaves falling slowly from the old oak tree",
    "describe rain",
    "Name three primary colors",
    (
        "Explain in simple terms why the sky looks blue during the day and turns red at sunset in "
        "the evening"
    ),
    "Give one good synonym for happy please",
    (
        '"Quote" this famous line back to me, word for word, with nothing else added to it at '
        "all, and then tell me who first said it and in which year and in which city it was said"
    ),
]


def items(texts=TEXTS):
    return [Item(i, t) for i, t in enumerate(texts, start=1)]


def choose_rule(module, rule, its, numbered=True, seed=0):
    """Draw until the module picks ``rule`` (the choice is uniform among applicable rules)."""
    for s in range(2000):
        c = module.choose(Rng(seed, s), pack_fixture(), its, numbered)
        if c is not None and c.rule == rule:
            return c
    return None


_PACK = None


def pack_fixture():
    global _PACK
    if _PACK is None:
        from mosaic_it import load_rule_pack

        _PACK = load_rule_pack()
    return _PACK


def test_first_letter_is_case_insensitive_and_skips_leading_marks():
    assert first_letter("Apple") == first_letter("apple") == "a"
    assert first_letter('"Quote" me') == "q"
    assert first_letter("123 go") == "g"
    assert first_letter("Émile") == "e"  # an accented letter sorts with its base letter
    assert first_letter("Straße") == "s" and first_letter("ßx") is None  # no a-z base
    assert first_letter("用中文回答") is None  # not a-z: no alphabetical claim is made
    assert join_numbers([2, 5, 7], ", ", " and ") == "2, 5 and 7"


@pytest.mark.parametrize("rule", PERMUTE_RULES)
def test_permute_rule_order_is_true(rule):
    its = items()
    c = choose_rule(permute, rule, its)
    assert c is not None, f"{rule} never chosen"
    order = c.answer_order
    assert sorted(order) == [1, 2, 3, 4, 5, 6] and c.masked == []
    by_number = {it.number: it.text for it in its}
    if rule == "REVERSE":
        assert order == [6, 5, 4, 3, 2, 1]
    elif rule == "ODD_EVEN":
        assert order == [1, 3, 5, 2, 4, 6]
    elif rule == "EVEN_ODD":
        assert order == [2, 4, 6, 1, 3, 5]
    elif rule == "FIX":
        assert order != [1, 2, 3, 4, 5, 6]
        assert "->".join(map(str, order)) in c.meta.replace(" -> ", "->") or all(
            str(n) in c.meta for n in order
        )
    else:
        key = {"ALPHA": first_letter, "LENGTH_WORD": word_count, "LENGTH_CHAR": char_count}[
            rule.replace("REVERSE_", "")
        ]
        keys = [key(by_number[n]) for n in order]
        descending = rule.startswith("REVERSE_")
        assert keys == sorted(keys, reverse=descending)
        # ties keep the given order, and the meta-instruction says so
        for a, b in zip(order, order[1:]):
            if key(by_number[a]) == key(by_number[b]):
                assert a < b
        tied = len(set(map(key, TEXTS))) < len(TEXTS)
        tie_phrases = pack_fixture().permute["tie_break"]
        assert any(c.meta.endswith(p) for p in tie_phrases) == tied


def test_alpha_with_tie_states_the_tie_break():
    its = items(["Write a", "write b", "Answer c", "Name d"])
    c = choose_rule(permute, "ALPHA", its)
    assert c.answer_order == [3, 4, 1, 2]
    assert any(c.meta.endswith(p) for p in pack_fixture().permute["tie_break"])


def test_sorting_rules_do_not_apply_when_they_would_say_nothing():
    same = items(["Write one", "Write two", "Write six"])  # same first letter, same length
    for rule in ("ALPHA", "REVERSE_ALPHA", "LENGTH_WORD", "LENGTH_CHAR"):
        assert permute.expected_order(rule, same, {}) is None
    non_ascii = items(["Γράψε ένα ποίημα", "Write a poem"])
    assert permute.expected_order("ALPHA", non_ascii, {}) is None


@pytest.mark.parametrize("rule", MASKOUT_RULES)
def test_maskout_rule_skips_exactly_what_it_says(rule):
    its = items()
    c = choose_rule(maskout, rule, its)
    assert c is not None, f"{rule} never chosen"
    masked, order = c.masked, c.answer_order
    assert masked and order and sorted(masked + order) == [1, 2, 3, 4, 5, 6]
    assert order == sorted(order)  # the rest keep their order
    if rule == "ODD":
        assert masked == [1, 3, 5]
    elif rule == "EVEN":
        assert masked == [2, 4, 6]
    elif rule == "FIX":
        assert 1 <= len(masked) <= 3
        for n in masked:
            assert str(n) in c.meta
    else:
        counts = {it.number: word_count(it.text) for it in its}
        skipped = [counts[n] for n in masked]
        kept = [counts[n] for n in order]
        if rule == "WORD_LONG":
            assert min(skipped) > max(kept)
        else:
            assert max(skipped) < min(kept)
        if len(masked) > 1:
            assert str(len(masked)) in c.meta


def test_word_rules_do_not_apply_on_a_tie_at_the_cut():
    its = items(["one two", "three four", "five"])
    assert maskout.expected_masked("WORD_LONG", its, {"n": 1}) is None
    assert maskout.expected_masked("WORD_SHORT", its, {"n": 1}) == [3]


@pytest.mark.parametrize(
    "module,position_rules",
    [
        (permute, {"FIX", "ODD_EVEN", "EVEN_ODD"}),
        (maskout, {"FIX", "ODD", "EVEN"}),
    ],
)
def test_unnumbered_samples_never_get_rules_that_name_numbers(module, position_rules):
    its = items()
    seen = Counter()
    for s in range(600):
        c = module.choose(Rng("unnumbered", s), pack_fixture(), its, False)
        if c:
            seen[c.rule] += 1
    assert seen and not (set(seen) & position_rules)


@pytest.mark.parametrize("module,rules", [(permute, PERMUTE_RULES), (maskout, MASKOUT_RULES)])
def test_rules_are_drawn_uniformly_when_all_apply(module, rules):
    its = items(
        [
            "bravo",
            "Alpha one two three four five",
            "Charlie six seven",
            "delta eight nine ten eleven twelve thirteen fourteen",
            (
                "Echo fifteen sixteen seventeen eighteen nineteen twenty twentyone twentytwo "
                "twentythree twentyfour"
            ),
            "foxtrot a b c d e f g h i j k l m n o p q r s t u v w x y z aa bb cc dd ee",
        ]
    )
    seen = Counter(
        module.choose(Rng("uniform", s), pack_fixture(), its, True).rule for s in range(6000)
    )
    for rule in rules:
        assert seen[rule] / 6000 == pytest.approx(1 / len(rules), abs=0.02), seen
