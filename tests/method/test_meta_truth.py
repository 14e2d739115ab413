"""Every meta-instruction true, unambiguous and safe to train on, in any language and for any
tokenizer: checked by an independent checker (tests/independent_checker.py) on real and
multilingual data, and feature by feature."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from mosaic_it import MosaicConfig, Mosaicker, Record, load_rule_pack, mosaic, read_records
from mosaic_it.cli.main import main
from mosaic_it.errors import InputError
from mosaic_it.method.layout import tag_pairs
from mosaic_it.method.rulepack import default_rules_path

from ..chat_fixtures import llama3_dir, qwen_dir  # noqa: F401 - fixture
from ..conftest import REAL_DATA, make_records, needs
from ..data_paths import CHINESE_DEMO, real_data
from ..independent_checker import check_run, sources_from_alpaca, sources_from_sharegpt

HERE = Path(__file__).resolve().parents[1]
MULTILINGUAL = HERE / "data" / "multilingual.json"
# instructions that read as meta-instructions, URLs, e-mail addresses, paths, formulas,
# hyphenated compounds, Thai, Lao, Khmer and Myanmar, among ordinary ones (issue 29)
ADVERSARIAL = HERE / "data" / "adversarial_meta.json"
# LLaMA-Factory's Chinese demo (pip download --no-deps --no-binary :all: llamafactory==0.9.5,
# data/alpaca_zh_demo.json): where tests/data_paths.py finds it (MOSAIC_IT_ZH_DATA, when set)
ZH_DATA = real_data(CHINESE_DEMO)
RUNS = [(seed, mode) for seed in (1, 2) for mode in ("uniform", "fix_max", "logistic2")]


def findings(path: Path | None, rows: list[dict], sources: dict, epochs: int, **options):
    records = list(read_records(str(path))) if path else rows
    total: Counter = Counter()
    rules: Counter = Counter()
    for seed, mode in RUNS:
        made = [
            s.to_record()
            for s in mosaic(records, epochs=epochs, seed=seed, wrap_mode=mode, **options)
        ]
        found, seen = check_run(made, sources, default_rules_path())
        total.update(found)
        rules.update(seen)
    return total, rules


def test_multilingual_set_has_no_false_or_ambiguous_meta_instruction():
    rows = json.loads(MULTILINGUAL.read_text(encoding="utf-8"))
    found, rules = findings(MULTILINGUAL, rows, sources_from_alpaca(rows), epochs=8)
    assert not found, found
    assert sum(v for r, v in rules.items() if r != "format") > 50  # rules were drawn and checked


@pytest.mark.parametrize("path", [REAL_DATA, ZH_DATA], ids=["english", "chinese"])
def test_real_demos_have_no_false_or_ambiguous_meta_instruction(path):
    if not path.exists() or os.environ.get("MOSAIC_IT_REAL_DATA", "1") == "0":
        pytest.skip(f"{path.name} not available")
    rows = json.loads(path.read_text(encoding="utf-8"))
    found, rules = findings(path, rows, sources_from_alpaca(rows), epochs=1)
    assert not found, found
    assert sum(v for r, v in rules.items() if "WORD" in r) > 20  # word rules were checked


def test_adversarial_set_has_no_false_or_ambiguous_meta_instruction():
    rows = json.loads(ADVERSARIAL.read_text(encoding="utf-8"))
    found, rules = findings(ADVERSARIAL, rows, sources_from_alpaca(rows), epochs=8)
    assert not found, found
    assert sum(v for r, v in rules.items() if "WORD" in r) > 0  # word rules were drawn


def test_english_demo_with_qwen2_has_no_decision_another_reading_of_a_word_flips(qwen_dir):
    """Issue 29's measure: the English demo at three seeds with the Qwen2 tokenizer (the
    bundled one is covered above); a URL counted as one word flipped 1% of word rules."""
    if not REAL_DATA.exists() or os.environ.get("MOSAIC_IT_REAL_DATA", "1") == "0":
        pytest.skip(f"{REAL_DATA.name} not available")
    rows = json.loads(REAL_DATA.read_text(encoding="utf-8"))
    records = list(read_records(str(REAL_DATA)))
    total: Counter = Counter()
    for seed in (1, 2, 3):
        made = [
            s.to_record() for s in mosaic(records, epochs=1, seed=seed, tokenizer=str(qwen_dir))
        ]
        total.update(check_run(made, sources_from_alpaca(rows), default_rules_path())[0])
    assert not total, total


def test_instructions_that_read_as_meta_instructions_get_no_rule_no_tags_and_numbers():
    meta_like = [
        Record("m1", "Skip instruction 2.", "I will skip it."),
        Record("m2", "Answer the questions in reverse order.", "Sure."),
        Record("m3", "Wrap your answer in <b> tags", "<b>ok</b>"),
        Record("m4", "跳过第2条指令。", "好的。"),
    ]
    records = make_records(300, seed=9) + meta_like
    samples, summary = run(records, epochs=6)
    holding = [s for s in samples if {"m1", "m2", "m3", "m4"} & set(s.spec.sources)]
    placed = [i for s in holding for i in s.spec.sources if i in {"m1", "m2", "m3", "m4"}]
    assert sorted(placed) == sorted(["m1", "m2", "m3", "m4"] * 6)  # each once an epoch
    for s in holding:
        assert s.spec.rule is None and s.spec.tags is None and s.spec.numbering is not None
    assert (
        summary.rules_replaced["permute: meta_like"] + summary.rules_replaced["maskout: meta_like"]
        > 0
    )
    # the same records elsewhere: ordinary instructions that mention order are not flagged
    pack = load_rule_pack()
    from mosaic_it.method.metalike import meta_like as detector

    find = detector(pack)
    assert all(find(r.prompt) for r in meta_like)
    assert not find("List the planets in order from the sun.")
    assert not find("Sort these words in alphabetical order.")
    assert not find("Write step-by-step instructions for baking bread.")


def test_fastchat_sharegpt_conversations_have_no_false_or_ambiguous_meta_instruction(tmp_path):
    hardcoded = needs("fastchat.data.hardcoded_questions")
    rows = hardcoded.identity_questions()
    path = tmp_path / "identity.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    found, _ = findings(path, rows, sources_from_sharegpt(rows), epochs=1)
    assert not found, found


# ---------------------------------------------------------------------------- feature by feature


def run(records, **options):
    m = Mosaicker(MosaicConfig(**options))
    return list(m.run(records)), m.summary


def test_label_styles_and_tags_are_fitted_to_each_samples_texts():
    """Answers holding Markdown lists never get the label "{n}" + "."; texts holding a tag
    never get that tag; instructions holding blank lines are never left unnumbered."""
    records = [
        Record(f"r{i}", f"List three things number {i}", "1. one\n2. two\n3. three\n[START]")
        for i in range(60)
    ] + [Record(f"b{i}", f"Summarise this.\n\nParagraph {i}.", "[END] short") for i in range(60)]
    samples, _ = run(records, epochs=3, max_tokens=4096)
    for s in samples:
        n = s.spec.numbering
        if any(str(i).startswith("r") for i in s.spec.sources):
            assert not (n and n.label == "{n}" and n.punctuation == "."), s.instruction
        if s.spec.tags:
            assert "[START]" not in (s.spec.tags.begin, s.spec.tags.end)
            assert "[END]" not in (s.spec.tags.begin, s.spec.tags.end)
        if s.spec.instructions > 1 and any(str(i).startswith("b") for i in s.spec.sources):
            assert n is not None


def test_permute_never_asks_for_the_given_order(tmp_path):
    samples, summary = run(make_records(600, seed=2), epochs=2)
    permuted = [s for s in samples if s.spec.strategy == "permute"]
    assert permuted and all(
        s.spec.answer_order != list(range(1, s.spec.instructions + 1)) for s in permuted
    )
    assert any(k.endswith(": identity") for k in summary.rules_replaced)
    path = tmp_path / "allow.json"
    path.write_text(
        json.dumps({"extends": "default", "name": "allow", "permute": {"identity_orders": True}})
    )
    samples, summary = run(make_records(600, seed=2), epochs=2, rules=str(path))
    assert not any(k.endswith(": identity") for k in summary.rules_replaced)


def test_format_and_rule_sentences_are_placed_independently_or_joined(tmp_path):
    samples, _ = run(make_records(900, seed=3), epochs=2)
    ruled = [s for s in samples if s.spec.rule and s.spec.layout_kind != "plain"]
    sides = Counter(s.spec.meta_position for s in ruled)
    assert sides["both"] / len(ruled) == pytest.approx(0.5, abs=0.08)
    path = tmp_path / "joined.json"
    path.write_text(
        json.dumps({"extends": "default", "name": "joined", "format": {"meta_placement": "joined"}})
    )
    samples, _ = run(make_records(300, seed=3), epochs=1, rules=str(path))
    assert all(s.spec.meta_position != "both" for s in samples)


def test_length_rules_say_that_the_input_counts():
    samples, _ = run(make_records(900, seed=4), epochs=2)
    notes = load_rule_pack().data["input_counts"]
    by_id = {r.id: r for r in make_records(900, seed=4)}
    measured = [
        s
        for s in samples
        if s.spec.rule
        in (
            "LENGTH_WORD",
            "REVERSE_LENGTH_WORD",
            "LENGTH_CHAR",
            "REVERSE_LENGTH_CHAR",
            "WORD_LONG",
            "WORD_SHORT",
        )
    ]
    assert measured
    for s in measured:
        multiline = any("\n" in by_id[i].prompt for i in s.spec.sources)
        assert any(note in s.spec.meta for note in notes) == multiline


def test_no_tag_label_or_phrasing_holds_a_chat_control_string():
    pack = load_rule_pack()
    for open_, close, begin, end in tag_pairs(pack):
        for word in (begin, end, begin.lower(), end.lower()):
            assert not any(a in open_ + word + close for a in pack.avoid)
    assert all(a not in "<|end|>" or a == "<|end|>" for a in pack.avoid)
    assert "<|end|>" in pack.avoid and len(tag_pairs(pack)) < 32 * 20
    # a template's control strings leave the pack too: "USER:" under vicuna
    extended = pack.avoiding(frozenset({"Reply"}))
    assert not any("Reply" in t for t in extended.layout["generic_phrasings"])


def test_records_holding_special_tokens_are_left_out_by_default(alpaca_file, tmp_path, capsys):
    good = [{"instruction": f"Name a colour {i}.", "output": "Blue."} for i in range(20)]
    bad = [
        {"instruction": "Say hi.", "output": "hi<|im_end|>"},
        {"instruction": "USER: hello ASSISTANT: hi", "output": "ok"},
        {"instruction": "Repeat </s>", "output": "</s>"},
    ]
    src = alpaca_file(good + bad)
    out, stats, rejects = tmp_path / "o.jsonl", tmp_path / "s.json", tmp_path / "r.jsonl"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--stats",
                str(stats),
                "--rejects",
                str(rejects),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "left out (special tokens) 3" in err
    summary = json.loads(stats.read_text())["summary"]
    assert summary["left_out"]["special_tokens"] == 3 and summary["records_mosaicked"] == 20
    listed = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["index"] for r in listed] == [20, 21, 22]
    assert all(r["reason"] == "special_tokens" for r in listed)
    assert "'<|im_end|>'" in listed[0]["detail"] and "'USER:'" in listed[1]["detail"]
    written = out.read_text()
    assert "<|im_end|>" not in written and "</s>" not in written

    assert (
        main(
            [
                "mosaic",
                str(src),
                str(tmp_path / "k.jsonl"),
                "--special-tokens",
                "keep",
                "--stats",
                str(stats),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    summary = json.loads(stats.read_text())["summary"]
    assert summary["records_mosaicked"] == 23 and summary["special_token_records"] == 3
    assert main(["mosaic", str(src), str(tmp_path / "e.jsonl"), "--special-tokens", "error"]) == 2
    assert "record 20" in capsys.readouterr().err
    with pytest.raises(InputError, match="field 'output' holds '<|im_end|>'"):
        list(
            Mosaicker(MosaicConfig(special_tokens="error")).run(
                [Record("x", "Say hi.", "hi<|im_end|>")]
            )
        )


def test_stats_json_and_printed_summary_agree(alpaca_file, tmp_path, capsys):
    rows = [{"instruction": f"Name a colour {i}.", "output": "Blue."} for i in range(10)]
    rows.append({"instruction": "q", "output": "a", "history": [["hi", "hello"]]})
    stats = tmp_path / "s.json"
    assert (
        main(["mosaic", str(alpaca_file(rows)), str(tmp_path / "o.json"), "--stats", str(stats)])
        == 0
    )
    err = capsys.readouterr().err
    left_out = json.loads(stats.read_text())["summary"]["left_out"]
    assert left_out == {
        "invalid": 0,
        "multi-turn": 1,
        "special_tokens": 0,
        "meta_like": 0,
        "too_long": 0,
    }
    assert "left out (invalid)  0" in err and "left out (multi-turn) 1" in err


def test_rules_replaced_are_counted_by_reason():
    records = [
        Record(f"z{i}", t, "好的。")
        for i, t in enumerate(
            ["用中文回答问题", "写一首诗", "解释一下这个词的意思吧", "请列出三种水果"] * 30
        )
    ]
    _, summary = run(records, epochs=2, strategies=("permute",))
    assert summary.rules_replaced["permute.ALPHA: letters"] > 0
    assert "rules replaced" in summary.render()


def test_a_tokenizers_own_special_tokens_are_avoided_and_left_out(llama3_dir, tmp_path):
    """Llama-3.2's 256 special tokens: none in a tag (even from a pack that asks for one),
    records holding one left out."""
    from mosaic_it import load_tokenizer
    from mosaic_it.budget.special import run_special_strings
    from mosaic_it.budget.templates import get_template

    tokenizer = load_tokenizer(str(llama3_dir))
    special = run_special_strings(tokenizer, get_template("llama3"))
    assert "<|reserved_special_token_5|>" in special and "<|eot_id|>" in special
    pack = tmp_path / "pack.json"
    pack.write_text(
        json.dumps(
            {
                "extends": "default",
                "name": "risky",
                "format": {
                    "tag_brackets": [["<|", "|>"]],
                    "tag_words": [["reserved_special_token_5", "END_ANSWER"]],
                    "tag_probability": 1.0,
                },
            }
        )
    )
    records = make_records(200, seed=6)
    records[7] = Record("bad", "Echo <|reserved_special_token_3|>", "done")
    m = Mosaicker(
        MosaicConfig(epochs=3, template="llama3", tokenizer=str(llama3_dir), rules=str(pack))
    )
    samples = list(m.run(records))
    assert all(not any(t in s.spec.tags.begin + s.spec.meta for t in special) for s in samples)
    assert any("reserved_special_token_5" in s.spec.tags.begin for s in samples)  # other brackets
    assert m.summary.left_out()["special_tokens"] == 1
    assert all("bad" not in s.spec.sources for s in samples)


def test_a_meta_like_record_no_label_can_number_is_left_out_and_listed(alpaca_file, tmp_path):
    """It could only go unnumbered, where a reader cannot tell it from the sample's own
    meta-instruction: left out, counted, and listed in --rejects with the reason."""
    labels = load_rule_pack().layout["labels"]
    every_label = "\n".join(label.format(n=1) + " x" for label in labels)
    rows = [{"instruction": f"Name a colour {i}.", "output": "Blue."} for i in range(20)]
    rows += [
        {"instruction": "Skip instruction 2.", "output": every_label},
        {"instruction": "Answer the questions in reverse order.", "output": "Fine."},
    ]
    stats, rejects = tmp_path / "s.json", tmp_path / "r.jsonl"
    argv = ["mosaic", str(alpaca_file(rows)), str(tmp_path / "o.jsonl"), "--workers", "1"]
    assert main([*argv, "--stats", str(stats), "--rejects", str(rejects)]) == 0
    summary = json.loads(stats.read_text())["summary"]
    assert summary["meta_like_records"] == 2 and summary["left_out"]["meta_like"] == 1
    listed = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["index"], r["reason"]) for r in listed] == [(20, "meta_like")]
    written = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    with_it = [r for r in written if "Answer the questions in reverse order." in r["instruction"]]
    assert with_it and all(
        r["mosaic"]["numbering"] and not r["mosaic"]["tags"] and not r["mosaic"]["rule"]
        for r in with_it
    )
