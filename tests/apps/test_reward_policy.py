"""The grading policy as a property: partial credit orders hand-written completions the same
way for every rule, in both reading modes (README, "Grading policy").

For one composed prompt of every rule (format, the ten Permute and five Maskout rules), the
completions are written from the prompt's reference answers: right, with one cosmetic slip (the
tags in another case), one answer untagged, every answer untagged, a skipped instruction
answered too (Maskout), two answers swapped, the last answer left out, and empty.
"""

from __future__ import annotations

import pytest

from mosaic_it.apps.eval_balance import eval_rules, rule_name
from mosaic_it.apps.make_eval import make_eval
from mosaic_it.io.readers import example_path, read_records
from mosaic_it.rewards import (
    COSMETIC,
    TAG_SHARE,
    MosaicReward,
    mosaic_partial_reward,
    mosaic_pass_reward,
)
from mosaic_it.verifier.spec import load_spec

TAGS = {"begin": "[Answer]", "end": "[End]"}  # letters in both cases: a case change shows


@pytest.fixture(scope="module")
def items() -> dict[str, dict]:
    """One numbered item per rule, its spec given tags (the grader reads only the spec)."""
    evalset = make_eval(list(read_records(example_path())), 48, max_instructions=3, seed=1)
    out: dict[str, dict] = {}
    for item in evalset.items:
        spec = item["mosaic"]
        name = rule_name(spec["strategy"], spec["rule"])
        if spec["numbering"] is not None and name not in out:
            out[name] = {**item, "mosaic": {**spec, "format": "tags", "tags": TAGS}}
    return out


def completions(item: dict) -> dict[str, str]:
    spec = load_spec(item["mosaic"])
    refs = item["references"]
    label = spec.numbering.render  # type: ignore[union-attr]

    def block(n: int, tags: tuple[str, str] = (TAGS["begin"], TAGS["end"])) -> str:
        return f"{label(n)}{tags[0]}{refs[n - 1] or 'An answer.'}{tags[1]}"

    def joined(blocks: list[str]) -> str:
        return "\n\n".join(blocks)

    order = list(spec.answer_order)
    right = [block(n) for n in order]
    out = {
        "right": joined(right),
        "tags in another case": joined(
            [block(n, (TAGS["begin"].upper(), TAGS["end"].upper())) for n in order]
        ),
        "one answer untagged": joined(right[:-1] + [block(order[-1], ("", ""))]),
        "every answer untagged": joined([block(n, ("", "")) for n in order]),
        "empty": "",
    }
    if spec.masked:
        out["a skipped instruction answered too"] = joined(
            [block(n) for n in sorted(order + [spec.masked[0]])]
        )
    if len(order) >= 2:
        out["two answers swapped"] = joined([right[1], right[0], *right[2:]])
        out["the last answer left out"] = joined(right[:-1])
    return out


# tiers of partial credit, highest first; completions in one tier may score alike
TIERS = [
    ["right"],
    ["tags in another case"],
    ["one answer untagged"],
    ["a skipped instruction answered too"],
    ["two answers swapped", "the last answer left out"],
    ["empty"],
]


def test_every_rule_has_an_item(items):
    assert sorted(items) == sorted(rule_name(s, r) for s, r in eval_rules())


@pytest.mark.parametrize("mode", ["loose", "strict"])
def test_partial_credit_orders_completions_alike_for_every_rule(items, mode):
    partial = MosaicReward("partial", mode=mode)
    passed = MosaicReward("pass", mode=mode)
    for name, item in items.items():
        texts = completions(item)
        spec = item["mosaic"]
        scores = dict(zip(texts, partial(list(texts.values()), mosaic=[spec] * len(texts))))
        passes = dict(zip(texts, passed(list(texts.values()), mosaic=[spec] * len(texts))))
        assert passes == {t: float(t == "right") for t in texts}, (name, passes)
        r = len(spec["answer_order"])
        assert scores["right"] == 1.0 and scores["empty"] == 0.0
        assert scores["tags in another case"] == pytest.approx(1 - COSMETIC / r)
        assert scores["one answer untagged"] == pytest.approx(1 - TAG_SHARE / r)
        assert scores["every answer untagged"] == pytest.approx(1 - TAG_SHARE)
        present = [[scores[t] for t in tier if t in scores] for tier in TIERS]
        present = [tier for tier in present if tier]
        for higher, lower in zip(present, present[1:]):
            assert min(higher) > max(lower), (name, mode, scores)
        assert 0.0 < scores["every answer untagged"] < 1.0


def test_rewards_and_score_share_the_default_mode():
    from mosaic_it.apps.score import score

    assert mosaic_pass_reward.mode == mosaic_partial_reward.mode == "loose"
    assert score.__kwdefaults__["mode"] == "loose"
