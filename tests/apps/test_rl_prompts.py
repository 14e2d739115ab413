"""mosaic-it make-rl-prompts: TRL prompt-only rows with specs, never from held-out records."""

from __future__ import annotations

import json

from mosaic_it.cli.main import main
from mosaic_it.io.readers import example_path
from mosaic_it.rewards import mosaic_pass_reward
from mosaic_it.verifier.checks import verify


def test_rows_are_verifiable_balanced_and_never_held_out(tmp_path, capsys):
    lines = example_path().read_text(encoding="utf-8").splitlines()
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    train.write_text("\n".join(lines[:100]) + "\n")
    held.write_text("\n".join(lines[95:]) + "\n")  # five records in both
    out, balance = tmp_path / "rl.jsonl", tmp_path / "balance.json"
    assert (
        main(
            [
                "make-rl-prompts",
                str(train),
                str(out),
                "--held-out",
                str(held),
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
    assert "5 left out: their instruction is held out" in capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 32 and json.loads(balance.read_text())["held_out_left_out"] == 5
    held_texts = [json.loads(line)["instruction"] for line in lines[95:]]
    for row in rows:
        assert set(row) == {"id", "prompt", "mosaic", "reference"}
        assert row["prompt"][-1]["role"] == "user"
        assert not any(t in row["prompt"][-1]["content"] for t in held_texts)
        assert verify(row["mosaic"], row["reference"]).passed  # the composed answer passes
    assert (
        mosaic_pass_reward([r["reference"] for r in rows], mosaic=[r["mosaic"] for r in rows])
        == [1.0] * 32
    )
    # the same command gives the same rows
    again = tmp_path / "again.jsonl"
    assert (
        main(
            [
                "make-rl-prompts",
                str(train),
                str(again),
                "--held-out",
                str(held),
                "--n",
                "32",
                "--max-instructions",
                "3",
                "-q",
            ]
        )
        == 0
    )
    assert again.read_bytes() == out.read_bytes()


def test_held_out_is_required_and_inputs_are_never_overwritten(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text(example_path().read_text(encoding="utf-8"))
    before = train.read_bytes()
    assert main(["make-rl-prompts", str(train), str(train), "--held-out", str(train)]) == 2
    assert "is the same file as INPUT" in capsys.readouterr().err
    assert train.read_bytes() == before
    assert (
        main(["make-rl-prompts", str(train), str(tmp_path / "o.jsonl"), "--held-out", str(train)])
        == 2
    )
    assert "every training record is among the held-out records" in capsys.readouterr().err


def test_curriculum_levels_go_from_easy_to_hard(tmp_path, capsys):
    lines = example_path().read_text(encoding="utf-8").splitlines()
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    train.write_text("\n".join(lines[:100]) + "\n")
    held.write_text("\n".join(lines[100:]) + "\n")
    out, balance = tmp_path / "rl.jsonl", tmp_path / "balance.json"
    args = ["make-rl-prompts", str(train), str(out), "--held-out", str(held), "--n", "31"]
    args += ["--max-instructions", "4", "--curriculum", "--balance", str(balance)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "level 1 (layout only" in err and "in 3 levels" in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    levels = [r["level"] for r in rows]
    assert levels == sorted(levels) and [levels.count(n) for n in (1, 2, 3)] == [10, 10, 11]
    assert len({r["id"] for r in rows}) == 31
    for row in rows:
        spec = row["mosaic"]
        k = spec["instructions"] if "instructions" in spec else len(spec["sources"])
        if row["level"] == 1:
            assert spec["strategy"] == "format" and k == 2
        elif row["level"] == 2:
            assert k <= 3
        assert verify(spec, row["reference"]).passed
    assert {r["mosaic"]["strategy"] for r in rows if r["level"] == 2} == {
        "format",
        "permute",
        "maskout",
    }
    assert [b["level"] for b in json.loads(balance.read_text())["levels"]] == [1, 2, 3]
    again = tmp_path / "again.jsonl"
    assert main([*args[:2], str(again), *args[3:-2], "-q"]) == 0
    assert again.read_bytes() == out.read_bytes()
