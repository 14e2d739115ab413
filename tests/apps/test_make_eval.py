"""make-eval: balanced, verifiable evaluation sets."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise

import pytest

from mosaic_it import verify
from mosaic_it.apps.eval_balance import allocate, eval_rules, possible, rule_name
from mosaic_it.apps.eval_checks import CHAR_MARGIN, WORD_MARGIN, absent_referent, tag_problem
from mosaic_it.apps.make_eval import make_eval, usable_records
from mosaic_it.apps.prompt_formats import generation_prompt
from mosaic_it.budget.templates import TEMPLATES
from mosaic_it.cli.main import main
from mosaic_it.io.jsonfiles import write_records
from mosaic_it.records import Record, Tags

from ..conftest import make_records
from ..independent_checker import characters as count_characters
from ..independent_checker import words as count_words


@pytest.fixture(scope="module")
def evalset():
    return make_eval(make_records(60, seed=5), 64, seed=3, max_instructions=3, template="none")


# ODD_EVEN with two instructions asks for the given order: no cell for it
ODD_EVEN_2 = ("permute.ODD_EVEN", 2)


def test_balance_matches_what_was_asked(evalset):
    """Equal shares for the strategies, then for each strategy's rules, then for k."""
    cells = Counter(
        (rule_name(i["mosaic"]["strategy"], i["mosaic"]["rule"]), i["mosaic"]["instructions"])
        for i in evalset.items
    )
    assert len(evalset.items) == 64 and len(eval_rules()) == 16
    balance = evalset.balance()
    assert balance["made"] == balance["asked"] == 64
    by_strategy = {s: row["made"] for s, row in balance["by_strategy"].items()}
    assert sorted(by_strategy.values()) == [21, 21, 22]
    for strategy, made in by_strategy.items():
        rules = [r for s, r in eval_rules() if s == strategy]
        per_rule = [balance["by_rule"][rule_name(strategy, r)]["made"] for r in rules]
        assert sum(per_rule) == made and max(per_rule) - min(per_rule) <= 1
        for r in rules:
            per_k = [cells[(rule_name(strategy, r), k)] for k in (2, 3) if possible(strategy, r, k)]
            assert max(per_k) - min(per_k) <= 1
    assert cells[("permute.ODD_EVEN", 2)] == 0  # it would ask for the order as given
    table = evalset.render_balance().splitlines()
    assert table[0].split() == ["strategy/rule", "k=2", "k=3", "total"]
    assert table[-2].split()[-1] == "64" and table[-1].startswith("per strategy: format ")


def test_every_item_is_verifiable_and_its_reference_passes(evalset):
    assert len({i["id"] for i in evalset.items}) == len(evalset.items)
    for item in evalset.items:
        spec = item["mosaic"]
        # no chat_prompt: template none
        assert set(item) == {"id", "prompt", "reference", "references", "mosaic"}
        assert spec["numbering"] or spec["tags"]
        if spec["strategy"] == "permute":
            assert spec["numbering"]
        if spec["strategy"] == "maskout":
            assert spec["numbering"] and spec["tags"]
        v = verify(spec, item["reference"], prompt=item["prompt"])
        assert v.passed and v.check("spec_consistent").passed, v.reasons()
        assert 0 < spec["tokens"] <= 2048


def test_same_seed_same_set_and_remainder_spread():
    records = make_records(40, seed=1)
    a = make_eval(records, 20, seed=9, max_instructions=3, template="none")
    b = make_eval(records, 20, seed=9, max_instructions=3, template="none")
    assert a.items == b.items
    cells = allocate(37, 3, seed=0)
    assert sum(c.asked for c in cells) == 37
    per_strategy = Counter()
    for c in cells:
        per_strategy[c.strategy] += c.asked
    assert sorted(per_strategy.values()) == [12, 12, 13]


def test_cli_writes_items_balance_and_table(alpaca_file, tmp_path, capsys):
    src = alpaca_file(
        [
            {"instruction": r.instruction, "input": r.input, "output": r.output}
            for r in make_records(50, seed=2)
        ]
    )
    out, balance = tmp_path / "eval.jsonl", tmp_path / "balance.json"
    assert (
        main(
            [
                "make-eval",
                str(src),
                str(out),
                "--n",
                "32",
                "--seed",
                "1",
                "--max-instructions",
                "3",
                "--balance",
                str(balance),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "wrote 32 of 32 evaluation items" in err and "permute.REVERSE_LENGTH_CHAR" in err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 32
    assert all(
        r["chat_prompt"].endswith(" ASSISTANT:") and r["prompt"] in r["chat_prompt"] for r in rows
    )
    b = json.loads(balance.read_text())
    assert b["made"] == 32 and len(b["cells"]) == 31  # no permute.ODD_EVEN with k=2
    assert all(c["made"] == c["asked"] for c in b["cells"])


def test_cells_that_cannot_be_filled_are_reported(alpaca_file, tmp_path, capsys):
    records = [{"instruction": r.instruction, "output": r.output} for r in make_records(2)]
    src, out, balance = alpaca_file(records), tmp_path / "e.jsonl", tmp_path / "b.json"
    assert (
        main(
            [
                "make-eval",
                str(src),
                str(out),
                "--n",
                "32",
                "--max-instructions",
                "3",
                "--balance",
                str(balance),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "warning: format with k=3: made 0 of 6 (the input has no 3 records" in err
    cells = json.loads(balance.read_text())["cells"]
    assert all(c["made"] == 0 for c in cells if c["k"] == 3)


def test_bad_options_exit_2(alpaca_file, tmp_path, capsys):
    src = alpaca_file([{"instruction": "a", "output": "b"}])
    assert main(["make-eval", str(src), str(tmp_path / "e.jsonl"), "--max-instructions", "1"]) == 2
    assert "2 instructions or more" in capsys.readouterr().err
    assert main(["make-eval", str(tmp_path / "nope.json"), str(tmp_path / "e.jsonl")]) == 2
    assert "nope.json: cannot read" in capsys.readouterr().err


def test_records_that_refer_to_absent_things_are_left_out_and_counted():
    absent = {
        Record(
            "a", "Describe the following painting.", "x", "https://example.org/images/degas.jpg"
        ): "a link to an image or file",
        Record(
            "b", "Outline the main points of this article", "x", "https://time.com/5798772/story/"
        ): "a link to a page",
        Record(
            "c", "Select a section of the following song.", "x", "<Song> Cue: chorus"
        ): "a placeholder",
        Record(
            "d", "Generate a recipe for a chili con carne dish.", "x", "`<noinput>`"
        ): "a placeholder",
        Record(
            "e", "Create the HTML code necessary to display the following text.", "x"
        ): "a pointer to text that is not there",
    }
    for record, why in absent.items():
        assert absent_referent(record) == why, record
    present = [
        Record("f", "Input a URL and output its domain.", "x", "https://docs.google.com/doc"),
        Record("g", "Alter the following sentence: The show was a hit.", "x"),
        Record("h", "Complete the analogy by replacing the <analogy> token.", "x", "sea <analogy>"),
        Record("i", "Summarize the following text.", "x", "Some text that is there."),
    ]
    assert [absent_referent(r) for r in present] == [None] * 4
    records = make_records(60, seed=5) + list(absent)
    made = make_eval(records, 12, seed=3, max_instructions=3, template="none")
    assert made.left_out == {
        "a placeholder": 2,
        "a link to an image or file": 1,
        "a link to a page": 1,
        "a pointer to text that is not there": 1,
    }
    assert any("left out 5 record(s)" in note for note in made.notes)
    used = {s for i in made.items for s in i["mosaic"]["sources"]}
    assert not used & {"a", "b", "c", "d", "e"}


def test_no_markdown_or_chat_control_tags():
    assert tag_problem(Tags("**BOR**", "**EOR**")) == "tag '**BOR**' is Markdown syntax"
    assert tag_problem(Tags("__open__", "__close__"))
    assert tag_problem(Tags("## GO ##", "## STOP ##"))
    assert (
        tag_problem(Tags("<|start|>", "<|end|>"))
        == "tag '<|start|>' looks like a chat-control string"
    )
    assert tag_problem(Tags("[START]", "[END]")) is None
    assert tag_problem(Tags("<<ANSWER>>", "<<END ANSWER>>")) is None


def test_records_are_used_once_while_the_pool_lasts():
    records = make_records(200, seed=6)
    made = make_eval(records, 24, seed=2, max_instructions=3, template="none")
    sources = [s for i in made.items for s in i["mosaic"]["sources"]]
    assert len(sources) == len(set(sources)) and made.reused == 0
    small = make_eval(make_records(12, seed=6), 24, seed=2, max_instructions=3, template="none")
    assert small.reused > 0 and any("the pool ran out" in note for note in small.notes)


def _decisions_are_clear(item, by_id) -> list[str]:
    """Recomputed here from the records: identity orders and decisions inside the margins."""
    spec = item["mosaic"]
    records = [by_id[s] for s in spec["sources"]]
    order, rule = spec["answer_order"], spec["rule"]
    problems = []
    if spec["strategy"] == "permute" and order == sorted(order):
        problems.append("identity order")
    for with_input in (True, False):
        texts = [
            f"{r.instruction}\n{r.input}" if with_input and r.input else r.instruction
            for r in records
        ]
        # the project's word and character definitions, as an independent reader counts them
        words = [count_words(t) for t in texts]
        chars = [count_characters(t) for t in texts]
        if spec["strategy"] == "permute" and rule and "LENGTH" in rule:
            keys, margin = (chars, CHAR_MARGIN) if "CHAR" in rule else (words, WORD_MARGIN)
            ranked = [keys[n - 1] for n in order]
            descending = rule.startswith("REVERSE")
            if ranked != sorted(ranked, reverse=descending):
                problems.append(f"order depends on input ({with_input})")
            if min(abs(a - b) for a, b in pairwise(ranked)) < margin:
                problems.append("inside the length margin")
        if spec["strategy"] == "maskout" and rule in ("WORD_LONG", "WORD_SHORT"):
            skipped = [words[n - 1] for n in spec["masked"]]
            kept = [words[n - 1] for n in order]
            gap = min(skipped) - max(kept) if rule == "WORD_LONG" else min(kept) - max(skipped)
            if gap < WORD_MARGIN:
                problems.append("inside the cut margin")
        if rule and ("LENGTH" in rule or "WORD" in rule) and "input" not in spec["meta"]:
            problems.append("no word on inputs")
    if spec["strategy"] == "permute" and rule and "ALPHA" in rule:
        firsts = [r.instruction.lstrip()[:1].lower() for r in records]
        if len(set(firsts)) < len(firsts) or not all(f.isalpha() for f in firsts):
            problems.append("letters not clear")
    return problems


def test_real_data_eval_set_has_no_free_or_ambiguous_items(capsys):
    """240 items from the real data: no identity order, no decision inside a margin, equal
    counts per strategy (the balance table is printed)."""
    from mosaic_it.io.readers import read_records

    from ..conftest import real_data_or_skip

    records = list(read_records(real_data_or_skip()))
    by_id = {r.id: r for r in records}
    made = make_eval(records, 240, seed=42, max_instructions=4, template="none")
    with capsys.disabled():
        print("\n" + made.render_balance())
    assert len(made.items) == 240
    # a record is used once while unused ones can fill the item; every reuse is reported, and
    # here (about 720 uses of 988 usable records) none is for want of records
    assert made.reused == 0 or any(
        f"{made.reused} while unused records remained" in n for n in made.notes
    )
    assert {s: row["made"] for s, row in made.balance()["by_strategy"].items()} == {
        "format": 80,
        "permute": 80,
        "maskout": 80,
    }
    problems = {i["id"]: p for i in made.items if (p := _decisions_are_clear(i, by_id))}
    assert problems == {}
    sources = [s for i in made.items for s in i["mosaic"]["sources"]]
    assert len(sources) - len(set(sources)) == made.reused


def test_real_data_references_pass_with_the_content_check(tmp_path):
    """The engine's own answers pass both modes with references, even when answers hold lines
    that look like labels (numbered lists under "{n}." labels, "**2.**" in markdown answers)."""
    from mosaic_it.apps.score import read_eval
    from mosaic_it.io.readers import read_records

    from ..conftest import real_data_or_skip

    records = list(read_records(real_data_or_skip()))
    made = make_eval(records, 400, seed=5, max_instructions=8, template="none")
    path = tmp_path / "eval.jsonl"
    write_records(path, made.items)
    items, invalid = read_eval(path)
    assert not invalid
    reference = {i["id"]: i["reference"] for i in made.items}
    for item in items:
        for mode in ("strict", "loose"):
            v = verify(
                item.spec,
                reference[item.id],
                mode=mode,
                references=item.references,
                instructions=item.instructions,
            )
            assert v.passed and v.check("content").passed, (item.id, mode, v.reasons())


def test_split_holds_records_out_and_make_eval_reads_any_format(tmp_path, capsys):
    """mosaic-it split: seeded, every record once, in one file or the other; make-eval then
    takes the held-out file in the input's own format (ShareGPT here)."""
    rows = [
        {
            "conversations": [
                {"from": "human", "value": f"{r.instruction}\n{r.input}".strip()},
                {"from": "gpt", "value": r.output},
            ]
        }
        for r in make_records(60, seed=4)
    ]
    src = tmp_path / "data.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    assert (
        main(["split", str(src), str(train), str(held), "--held-out", "0.25", "--seed", "3"]) == 0
    )
    assert "wrote 45 training records" in capsys.readouterr().err
    a = [json.loads(line) for line in train.read_text().splitlines()]
    b = [json.loads(line) for line in held.read_text().splitlines()]
    assert len(b) == 15 and sorted(map(json.dumps, a + b)) == sorted(map(json.dumps, rows))
    first = held.read_bytes()
    assert main(["split", str(src), str(train), str(held), "--held-out", "15", "--seed", "3"]) == 0
    assert held.read_bytes() == first  # same seed, same split
    out = tmp_path / "eval.jsonl"
    assert (
        main(
            [
                "make-eval",
                str(held),
                str(out),
                "--n",
                "6",
                "--max-instructions",
                "2",
                "--template",
                "none",
            ]
        )
        == 0
    )
    held_prompts = {r["conversations"][0]["value"] for r in b}
    for line in out.read_text().splitlines():
        item = json.loads(line)
        assert item["references"] and all(
            ref in {r["conversations"][1]["value"] for r in b} for ref in item["references"]
        )
    assert held_prompts
    assert main(["split", str(src), str(src), str(held), "--held-out", "3"]) == 2
    assert "is the same file as INPUT" in capsys.readouterr().err
    both = tmp_path / "both.jsonl"
    assert main(["split", str(src), str(both), str(both), "--held-out", "3"]) == 2
    assert "TRAIN" in capsys.readouterr().err and not both.exists()
    assert main(["split", str(src), str(train), str(held), "--held-out", "60"]) == 2
    assert "nothing to train on" in capsys.readouterr().err


def test_usable_records_count_what_is_left_out_and_refuse_an_empty_pool():
    records = make_records(3, seed=2) + [Record("p", "Sing <Song>.", "x")]
    usable, left_out = usable_records(records)
    assert [r.id for r in usable] == [r.id for r in records[:3]]
    assert left_out == Counter({"a placeholder": 1})
    with pytest.raises(ValueError, match="every record refers to something"):
        usable_records([Record("p", "Sing <Song>.", "x")])


def test_eval_items_are_numbered_and_carry_the_chat_prompt_of_their_template():
    evalset = make_eval(make_records(40, seed=5), 12, seed=3, max_instructions=3)
    items = evalset.items
    assert [i["id"] for i in items] == [f"eval-{n:02d}" for n in range(1, len(items) + 1)]
    vicuna = TEMPLATES["vicuna"]
    for item in items:
        assert item["chat_prompt"] == generation_prompt(vicuna, item["prompt"])
        assert item["chat_prompt"].endswith(f" USER: {item['prompt']} ASSISTANT:")
        assert len(item["references"]) == item["mosaic"]["instructions"]
