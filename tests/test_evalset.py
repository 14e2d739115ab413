"""make-eval: balanced, verifiable evaluation sets."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mosaic_it import verify
from mosaic_it.cli import main
from mosaic_it.evalset import allocate, eval_rules, make_eval, rule_name

from .conftest import make_records


@pytest.fixture(scope="module")
def evalset():
    return make_eval(make_records(60, seed=5), 62, seed=3, max_instructions=3, template="none")


# ODD_EVEN with two instructions asks for the given order: no cell for it
ODD_EVEN_2 = ("permute.ODD_EVEN", 2)


def test_balance_matches_what_was_asked(evalset):
    cells = Counter((rule_name(i["mosaic"]["strategy"], i["mosaic"]["rule"]),
                     i["mosaic"]["instructions"]) for i in evalset.items)
    assert len(evalset.items) == 62 and len(eval_rules()) == 16
    assert cells == {(rule_name(s, r), k): 2 for s, r in eval_rules() for k in (2, 3)
                     if (rule_name(s, r), k) != ODD_EVEN_2}
    balance = evalset.balance()
    assert balance["made"] == balance["asked"] == 62
    assert all(row == {"asked": 2 if name == ODD_EVEN_2[0] else 4,
                       "made": 2 if name == ODD_EVEN_2[0] else 4}
               for name, row in balance["by_rule"].items())
    assert balance["by_instructions"] == {"2": {"asked": 30, "made": 30},
                                          "3": {"asked": 32, "made": 32}}
    assert balance["by_strategy"]["permute"] == {"asked": 38, "made": 38}
    table = evalset.render_balance().splitlines()
    assert table[0].split() == ["strategy/rule", "k=2", "k=3", "total"]
    assert table[-1].split() == ["total", "30", "32", "62"]


def test_every_item_is_verifiable_and_its_reference_passes(evalset):
    assert len({i["id"] for i in evalset.items}) == len(evalset.items)
    for item in evalset.items:
        spec = item["mosaic"]
        assert set(item) == {"id", "prompt", "reference", "mosaic"}  # no chat_prompt: template none
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
    asked = [c.asked for c in allocate(37, 3, seed=0)]
    assert sum(asked) == 37 and set(asked) == {1, 2} and asked.count(2) == 6  # 31 cells


def test_cli_writes_items_balance_and_table(alpaca_file, tmp_path, capsys):
    src = alpaca_file([{"instruction": r.instruction, "input": r.input, "output": r.output}
                       for r in make_records(50, seed=2)])
    out, balance = tmp_path / "eval.jsonl", tmp_path / "balance.json"
    assert main(["make-eval", str(src), str(out), "--n", "32", "--seed", "1",
                 "--max-instructions", "3", "--balance", str(balance)]) == 0
    err = capsys.readouterr().err
    assert "wrote 32 of 32 evaluation items" in err and "permute.REVERSE_LENGTH_CHAR" in err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 32
    assert all(r["chat_prompt"].endswith(" ASSISTANT:") and r["prompt"] in r["chat_prompt"]
               for r in rows)
    b = json.loads(balance.read_text())
    assert b["made"] == 32 and len(b["cells"]) == 31 and all(c["made"] >= 1 for c in b["cells"])


def test_cells_that_cannot_be_filled_are_reported(alpaca_file, tmp_path, capsys):
    records = [{"instruction": r.instruction, "output": r.output} for r in make_records(2)]
    src, out, balance = alpaca_file(records), tmp_path / "e.jsonl", tmp_path / "b.json"
    assert main(["make-eval", str(src), str(out), "--n", "32", "--max-instructions", "3",
                 "--balance", str(balance)]) == 0
    err = capsys.readouterr().err
    assert "warning: format with k=3: made 0 of 1" in err
    cells = json.loads(balance.read_text())["cells"]
    assert all(c["made"] == 0 for c in cells if c["k"] == 3)


def test_bad_options_exit_2(alpaca_file, tmp_path, capsys):
    src = alpaca_file([{"instruction": "a", "output": "b"}])
    assert main(["make-eval", str(src), str(tmp_path / "e.jsonl"), "--max-instructions", "1"]) == 2
    assert "2 instructions or more" in capsys.readouterr().err
    assert main(["make-eval", str(tmp_path / "nope.json"), str(tmp_path / "e.jsonl")]) == 2
    assert "nope.json: cannot read" in capsys.readouterr().err
