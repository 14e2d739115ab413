"""A strategy is one module plus its rule-pack section: composing and verifying find it in the
registry. The strategy here is made in the test and registered for it alone."""

from __future__ import annotations

import json

import pytest

from mosaic_it import Record, RulePackError, load_rule_pack, verify
from mosaic_it.method.compose import compose, plan_sample
from mosaic_it.method.strategies import STRATEGIES
from mosaic_it.method.strategies.base import (
    Passed,
    RuleChoice,
    Strategy,
    find_strategy,
    format_numbers,
    register,
    registered,
    unregister,
)
from mosaic_it.verifier.spec import load_spec

RECORDS = [
    Record(id=i, instruction=text, output=answer)
    for i, (text, answer) in enumerate(
        [
            ("Name a color.", "Blue."),
            ("What is 2+2?", "4"),
            ("Name a fruit.", "An apple."),
        ]
    )
]


def swap_first_two(numbers: list[int]) -> list[int]:
    return [numbers[1], numbers[0], *numbers[2:]]


def choose(rng, pack, items, numbered, passed):
    if not numbered:
        if passed is not None:
            passed.append(Passed("FIRST_TWO", "numbers"))
        return None
    meta = rng.choice(pack.data["swap"]["phrasings"])
    return RuleChoice("swap", "FIRST_TWO", meta, swap_first_two([it.number for it in items]))


def check(spec, items):
    expected = swap_first_two([it.number for it in items])
    if spec.masked or spec.answer_order != expected:
        return f"FIRST_TWO answers {format_numbers(expected)}, the spec says {spec.answer_order}"
    return None


def check_pack(c, section):
    c.texts(c.get(section, "phrasings", "swap"), "swap.phrasings", set())


def pack_pools(section):
    return [("swap.phrasings", section, "phrasings")]


PHRASING = "Answer instruction 2 first, then 1, then the rest in order."


def write_pack(path, phrasings):
    body = {"extends": "default", "swap": {"phrasings": phrasings}}
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


@pytest.fixture
def swap_strategy():
    register(Strategy("swap", ("FIRST_TWO",), check, choose, frozenset(), check_pack, pack_pools))
    yield
    unregister("swap")


@pytest.fixture
def swap_pack(tmp_path, swap_strategy):
    return load_rule_pack(write_pack(tmp_path / "rules.json", [PHRASING]))


def test_compose_and_verify_use_a_strategy_registered_elsewhere(swap_pack):
    assert "swap" in registered() and "swap" not in STRATEGIES  # built-ins stay as they were
    for seed in range(40):
        plan = plan_sample(swap_pack, ("swap",), (seed, 0, 0))
        sample = compose(swap_pack, plan, RECORDS, 0)
        if sample.spec.numbering is None:
            continue  # unnumbered: the rule does not apply and the sample has a layout only
        spec = sample.spec.to_dict()
        assert (spec["strategy"], spec["rule"]) == ("swap", "FIRST_TWO")
        assert spec["answer_order"] == [2, 1, 3]
        assert "Answer instruction 2 first" in sample.instruction
        assert load_spec(spec, swap_pack).strategy == "swap"
        verdict = verify(spec, sample.output, prompt=sample.instruction, pack=swap_pack)
        assert verdict.passed, verdict.reasons()
        assert verdict.check("spec_consistent").passed
        texts = [r.prompt for r in RECORDS]
        wrong = dict(spec, answer_order=[1, 2, 3])
        c = verify(wrong, sample.output, instructions=texts, pack=swap_pack)
        assert c.check("spec_consistent").reason == (
            "FIRST_TWO answers 2, 1, 3, the spec says [1, 2, 3]"
        )
        break
    else:
        pytest.fail("no numbered sample in 40 seeds")


def test_an_unregistered_strategy_is_unknown_to_the_verifier(swap_pack):
    sample = compose(swap_pack, plan_sample(swap_pack, ("swap",), (1, 0, 0)), RECORDS, 0)
    unregister("swap")
    assert find_strategy("swap") is None
    with pytest.raises(ValueError, match="unknown strategy 'swap'; known: format, permute"):
        load_spec(dict(sample.spec.to_dict(), strategy="swap", rule="FIRST_TWO"))


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="'permute' is registered already"):
        register(Strategy("permute", ("FIX",), check, choose))
    assert find_strategy("permute").rules[0] == "FIX"


def test_the_rule_pack_asks_a_registered_strategy_to_check_its_section(tmp_path, swap_strategy):
    with pytest.raises(RulePackError, match=r"swap\.phrasings: expected a non-empty list"):
        load_rule_pack(write_pack(tmp_path / "empty.json", []))
    (tmp_path / "none.json").write_text('{"extends": "default"}', encoding="utf-8")
    with pytest.raises(RulePackError, match=r"none\.json: swap: missing"):
        load_rule_pack(tmp_path / "none.json")
    avoided = write_pack(tmp_path / "avoid.json", [PHRASING, "Say <|im_end|> first."])
    assert load_rule_pack(avoided).section("swap")["phrasings"] == [PHRASING]
