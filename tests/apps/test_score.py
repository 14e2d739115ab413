"""score: exact figures on scripted answers, and every kind of bad input said out loud."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from mosaic_it.apps.eval_balance import rule_name
from mosaic_it.apps.make_eval import make_eval
from mosaic_it.cli.main import main
from mosaic_it.io.jsonfiles import write_records

from ..conftest import make_records, needs

# text outside the answers: two lines of it fail every layout in both modes
WRONG_PREFIX = "Sure, here are my answers.\nI hope they help!\n"


@pytest.fixture(scope="module")
def eval_items():
    records = make_records(60, seed=8)
    return make_eval(records, 120, seed=4, max_instructions=3, template="none").items


@pytest.fixture
def eval_file(tmp_path, eval_items):
    path = tmp_path / "eval.jsonl"
    write_records(path, eval_items)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def half_right(items):
    """In every (rule, k) cell, the first item answered with its reference, the second wrongly."""
    seen = defaultdict(int)
    rows = []
    for item in sorted(items, key=lambda i: i["id"]):
        spec = item["mosaic"]
        cell = (rule_name(spec["strategy"], spec["rule"]), spec["instructions"])
        wrong = seen[cell] % 2
        seen[cell] += 1
        rows.append(
            {
                "id": item["id"],
                "response": WRONG_PREFIX + item["reference"] if wrong else item["reference"],
            }
        )
    return rows


def test_half_wrong_answers_score_exactly_half_per_rule(eval_file, eval_items, tmp_path, capsys):
    needs("matplotlib")  # --plot
    responses = write_jsonl(tmp_path / "r.jsonl", half_right(eval_items))
    out, png = tmp_path / "table.json", tmp_path / "acc.png"
    args = ["score", str(eval_file), str(responses), "--out", str(out), "--plot", str(png)]
    assert main(args) == 0
    table = json.loads(out.read_text())
    assert table["counts"] == {
        "eval_items": 120,
        "scored": 120,
        "missing_responses": 0,
        "extra_responses": 0,
        "empty_responses": 0,
        "not_verifiable": 0,
        "invalid_eval_items": 0,
    }
    assert len(table["by_rule"]) == 16
    for group in ("by_rule", "by_instructions", "by_strategy"):
        for name, row in table[group].items():
            assert row["sample_accuracy"] == 0.5, (group, name, row)
    assert table["overall"]["n"] == 120 and table["overall"]["passed"] == 60
    # the extra text fails the sample, but every required answer is there, in place and tagged
    assert table["overall"]["instruction_accuracy"] == 1.0
    assert table["failed_checks"] == {"nothing_extra": 60}
    printed = capsys.readouterr().out
    assert "rule maskout.WORD_LONG" in printed and "50.0" in printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_extra_and_empty_responses_are_counted_and_listed(
    eval_file, eval_items, tmp_path, capsys
):
    rows = [{"id": i["id"], "response": i["reference"]} for i in eval_items]
    rows[0]["response"] = ""
    rows[1]["response"] = None
    rows += [{"id": "not-an-item", "response": "hello"}]
    del rows[2:5]  # three missing
    out = tmp_path / "t.json"
    assert (
        main(
            [
                "score",
                str(eval_file),
                str(write_jsonl(tmp_path / "r.jsonl", rows)),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = json.loads(out.read_text())
    c = table["counts"]
    assert (c["scored"], c["missing_responses"], c["extra_responses"], c["empty_responses"]) == (
        120,
        3,
        1,
        2,
    )
    assert table["overall"]["passed"] == 120 - 5  # missing and empty both count as failures
    assert table["missing_ids"] == [i["id"] for i in eval_items[2:5]]
    assert table["extra_ids"] == ["not-an-item"]
    assert table["failed_checks"] == {"missing": 3, "not_empty": 2}
    printed = capsys.readouterr().out
    assert "3 missing response(s), scored as failures" in printed
    assert "1 response(s) to no evaluation item, ignored: not-an-item" in printed
    assert "2 empty response(s), failed as empty" in printed


def test_unusable_specs_are_listed_and_exit_2_while_the_rest_is_scored(
    eval_items, tmp_path, capsys
):
    two = next(i for i in eval_items[4:] if len(i["mosaic"]["answer_order"]) > 1)
    items = [dict(i) for i in eval_items[:4] + [two] + [eval_items[5]]]
    items[0]["mosaic"] = {k: v for k, v in items[0]["mosaic"].items() if k != "masked"}
    items[1]["mosaic"] = {**items[1]["mosaic"], "version": 7}
    items[2]["mosaic"] = {**items[2]["mosaic"], "rule_pack": "mosaic-it-default/9"}
    del items[3]["mosaic"]
    items[4]["mosaic"] = {**two["mosaic"], "answer_order": two["mosaic"]["answer_order"][::-1]}
    evals = write_jsonl(tmp_path / "e.jsonl", items)
    responses = write_jsonl(
        tmp_path / "r.jsonl", [{"id": i["id"], "response": i["reference"]} for i in items]
    )
    out = tmp_path / "t.json"
    assert main(["score", str(evals), str(responses), "--out", str(out)]) == 2
    table = json.loads(out.read_text())
    assert table["counts"]["invalid_eval_items"] == 5 and table["counts"]["extra_responses"] == 0
    errors = [bad["error"] for bad in table["invalid_eval_items"]]
    assert "missing field(s) 'masked'" in errors[0]
    assert "spec version 7 is not known" in errors[1]
    assert "rule pack mosaic-it-default/9" in errors[2]
    assert "field 'mosaic' (the spec): missing" in errors[3]
    assert "spec does not match its prompt" in errors[4]
    assert table["invalid_eval_items"][0]["where"].endswith("e.jsonl:1 (record 0)")
    assert table["overall"]["n"] == table["overall"]["passed"] == 1
    captured = capsys.readouterr()
    assert "invalid evaluation item(s), not scored" in captured.out
    assert "could not be read; the others were scored" in captured.err


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"id": "a", "response": "x"}\n{"id": "b", "response": \n', ":2: invalid JSON"),
        ('{"id": "a", "response": "x"}\n{"response": "y"}\n', ":2 (record 1): field 'id': missing"),
        ('{"id": "a", "response": "x"}\n{"id": "a", "response": "y"}\n', "id 'a' occurs twice"),
        ('{"id": "a"}\n', ":1 (record 0): field 'response': missing"),
        ('{"id": "a", "response": 3}\n', "field 'response': expected a string, got int"),
        ('["a", "x"]\n', "expected an object, got list"),
    ],
)
def test_malformed_responses_name_file_and_line(eval_file, tmp_path, capsys, content, message):
    responses = tmp_path / "r.jsonl"
    responses.write_text(content, encoding="utf-8")
    out = tmp_path / "t.json"
    assert main(["score", str(eval_file), str(responses), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(responses) in err and message in err
    assert not out.exists()


def test_loose_mode_forgives_decoration(eval_file, eval_items, tmp_path):
    rows = []
    for item in eval_items:
        tags = item["mosaic"]["tags"]
        text = item["reference"]
        if tags:
            text = text.replace(tags["begin"], f"**{tags['begin']}**")
        rows.append({"id": item["id"], "response": "Here are the answers:\n" + text})
    responses = write_jsonl(tmp_path / "r.jsonl", rows)
    tables = {}
    for mode in ("strict", "loose"):
        out = tmp_path / f"{mode}.json"
        args = ["score", str(eval_file), str(responses), "--mode", mode, "--out", str(out)]
        assert main(args) == 0
        tables[mode] = json.loads(out.read_text())
    assert tables["loose"]["overall"]["passed"] == 120
    assert tables["strict"]["overall"]["passed"] == 0
    assert tables["loose"]["overall"]["content_accuracy"] == 1.0


def test_a_changed_tag_case_is_its_own_failed_check(eval_file, eval_items, tmp_path):
    rows, tagged = [], 0
    for item in eval_items:
        tags, text = item["mosaic"]["tags"], item["reference"]
        if tags:
            tagged += 1
            text = text.replace(tags["begin"], tags["begin"].swapcase())
        rows.append({"id": item["id"], "response": text})
    out = tmp_path / "loose.json"
    args = [
        "score",
        str(eval_file),
        str(write_jsonl(tmp_path / "r.jsonl", rows)),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    table = json.loads(out.read_text())
    assert table["mode"] == "loose" and table["overall"]["passed"] == 120 - tagged
    assert table["failed_checks"] == {"tag_case": tagged}
