"""Reward values on hand-made completions, in both of TRL's completion shapes."""

from __future__ import annotations

import json

import pytest

from mosaic_it.records import SpecError
from mosaic_it.rewards import (
    MosaicReward,
    completion_text,
    mosaic_partial_reward,
    mosaic_pass_reward,
)

# three instructions; the one with the fewest words (3) is to be skipped
SPEC = {
    "sources": ["a", "b", "c"],
    "epoch": 0,
    "strategy": "maskout",
    "rule": "WORD_SHORT",
    "format": "tags",
    "numbering": {"label": "({n})", "punctuation": ".", "newline": True},
    "tags": {"begin": "[|reply|]", "end": "[|end reply|]"},
    "meta": "For every answer, follow the template [|reply|]answer[|end reply|]. Ignore the "
    "instruction containing the fewest words entirely and handle the remaining "
    "instructions as usual.",
    "meta_position": "after",
    "answer_order": [1, 2],
    "masked": [3],
    "rule_params": {"n": 1},
    "tokens": 0,
    "template": "vicuna",
    "rule_pack": "mosaic-it-default/1",
    "version": 1,
}


def answer(n: int, text: str, tags: bool = True) -> str:
    body = f"[|reply|]{text}[|end reply|]" if tags else text
    return f"({n}).\n{body}"


RIGHT = answer(1, "Grow beans under red and blue light.") + "\n\n" + answer(2, "- [ ] Tent")
CASES = {
    "right": (RIGHT, 1.0, 1.0),
    "wrong order": (answer(2, "- [ ] Tent") + "\n\n" + answer(1, "Grow beans."), 0.0, 1 / 2),
    "masked answered": (RIGHT + "\n\n" + answer(3, "Rayleigh scattering."), 0.0, 2 / 3),
    "missing tags": (
        answer(1, "Grow beans.", tags=False) + "\n\n" + answer(2, "- [ ] Tent", tags=False),
        0.0,
        0.75,
    ),
    "tags upper-cased": (RIGHT.upper(), 0.0, 0.95),
    "empty": ("", 0.0, 0.0),
}


def rewards(fn, completions):
    return fn(completions=completions, mosaic=[SPEC] * len(completions))


@pytest.mark.parametrize("name", list(CASES))
def test_reward_values_on_hand_made_completions(name):
    text, passed, partial = CASES[name]
    assert rewards(mosaic_pass_reward, [text]) == [passed]
    assert rewards(mosaic_partial_reward, [text]) == [pytest.approx(partial, abs=1e-6)]


def test_conversational_completions_score_like_texts():
    texts = [t for t, _, _ in CASES.values()]
    messages = [[{"role": "assistant", "content": t}] for t in texts]
    parts = [[{"role": "assistant", "content": [{"type": "text", "text": t}]}] for t in texts]
    for fn in (mosaic_pass_reward, mosaic_partial_reward):
        assert rewards(fn, messages) == rewards(fn, texts) == rewards(fn, parts)


def test_spec_as_json_text_and_as_a_datasets_row():
    # a datasets column of objects fills keys other rows have with None
    row = {**SPEC, "rule_params": {"n": 1, "order": None}}
    assert mosaic_pass_reward([RIGHT, RIGHT], mosaic=[json.dumps(SPEC), row]) == [1.0, 1.0]


@pytest.mark.parametrize(
    "text",
    [
        "\x00\xff\ud800" * 1000,  # binary-looking, a lone surrogate
        "(1).\n[|reply|]never closed",  # unterminated tag
        "(1).\n[|reply|]" + "x" * 1_000_000,  # huge
        "[|end reply|][|reply|](2).(1).",
        "\n\n\n   ",
    ],
)
def test_rewards_score_any_output_without_raising(text):
    for fn in (mosaic_pass_reward, mosaic_partial_reward, MosaicReward("partial", mode="loose")):
        scores = rewards(fn, [text, None, 42, b"\xff\xfe", [{"role": "assistant"}], [text]])
        assert len(scores) == 6 and all(0.0 <= s <= 1.0 for s in scores)


def test_loose_mode_forgives_decoration():
    bold = RIGHT.replace("(1).", "**(1).**")
    assert rewards(MosaicReward("pass", mode="strict"), [bold]) == [0.0]
    assert rewards(mosaic_pass_reward, [bold]) == [1.0]  # loose, the default
    # strict partial credit counts it as a cosmetic slip
    assert rewards(MosaicReward("partial", mode="strict"), [bold]) == [0.95]


def test_a_bad_spec_is_a_data_error_naming_the_row():
    with pytest.raises(SpecError, match="row 1: column 'mosaic'"):
        mosaic_pass_reward(["x", "y"], mosaic=[SPEC, {"sources": []}])
    with pytest.raises(SpecError, match="no 'mosaic' column"):
        mosaic_pass_reward(["x"])


def test_completion_text_shapes():
    assert (
        completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        == "a"
    )
    assert completion_text(None) == ""
    assert completion_text({"role": "assistant", "content": "b"}) == "b"
