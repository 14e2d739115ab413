"""The command line and the file formats: errors, exit codes, atomic output, determinism."""

import json
import os
import subprocess
import sys

import pytest

from mosaic_it.cli.main import main

GOOD = [
    {
        "instruction": "Give three tips for staying healthy.",
        "input": "",
        "output": "Eat well. Sleep. Move.",
    },
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Name a color.", "output": "Blue.", "id": "c1"},
    {"instruction": "What is 2+2?", "input": None, "output": "4"},
] * 5


def test_json_and_jsonl_in_and_out(alpaca_file, tmp_path, capsys):
    for src_name in ("in.json", "in.jsonl"):
        src = alpaca_file(GOOD, src_name)
        for out_name in ("out.json", "out.jsonl"):
            out = tmp_path / out_name
            assert main(["mosaic", str(src), str(out), "--epochs", "2", "-q"]) == 0
            text = out.read_text(encoding="utf-8")
            rows = (
                json.loads(text)
                if out_name.endswith(".json")
                else [json.loads(l) for l in text.splitlines()]
            )
            assert sum(r["mosaic"]["instructions"] for r in rows) == 2 * len(GOOD)
            assert all(set(r) == {"instruction", "input", "output", "mosaic"} for r in rows)
            sources = [i for r in rows for i in r["mosaic"]["sources"]]
            assert sources.count("c1") == 10 and sources.count(0) == 2


def test_same_seed_gives_byte_identical_files(alpaca_file, tmp_path):
    src = alpaca_file(GOOD)
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        assert main(["mosaic", str(src), str(tmp_path / name), "--seed", "5", "-q"]) == 0
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]


def test_summary_stats_and_rejects(alpaca_file, tmp_path, capsys):
    records = GOOD + [{"instruction": "Say a lot.", "output": "word " * 3000}]
    src = alpaca_file(records)
    stats, rejects = tmp_path / "stats.json", tmp_path / "rejects.jsonl"
    code = main(
        [
            "mosaic",
            str(src),
            str(tmp_path / "o.jsonl"),
            "--max-tokens",
            "512",
            "--stats",
            str(stats),
            "--rejects",
            str(rejects),
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "rejected (too long) 1" in err and "samples written" in err
    s = json.loads(stats.read_text())
    assert s["config"]["max_tokens"] == 512
    assert s["summary"]["records_read"] == 21 and s["summary"]["records_mosaicked"] == 20
    assert s["summary"]["rejected"][0]["index"] == 20
    assert sum(s["summary"]["instructions_per_sample"].values()) == s["summary"]["samples_written"]
    rej = [json.loads(l) for l in rejects.read_text().splitlines()]
    assert rej[0]["reason"] == "too_long" and rej[0]["tokens"] > 512


@pytest.mark.parametrize(
    "record,field,why",
    [
        ({"instruction": "x"}, "output", "missing"),
        ({"instruction": 3, "output": "y"}, "instruction", "expected a string, got int"),
        (
            {"instruction": "x", "output": "y", "input": ["a"]},
            "input",
            "expected a string, got list",
        ),
        ({"instruction": "x", "output": "y", "id": 1.5}, "id", "expected a string or an integer"),
        ({"instruction": "  ", "output": "y"}, "instruction", "empty"),
        ("just text", None, "expected an object"),
    ],
)
def test_bad_record_names_record_and_field(alpaca_file, tmp_path, capsys, record, field, why):
    src = alpaca_file(GOOD[:3] + [record], "bad.jsonl")
    out = tmp_path / "o.jsonl"
    assert main(["mosaic", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:4 (record 3)" in err and why in err
    if field:
        assert f"'{field}'" in err
    assert not out.exists()


def test_skip_bad_records_counts_and_lists_them(alpaca_file, tmp_path, capsys):
    src = alpaca_file(GOOD + [{"instruction": 1, "output": "y"}, {"instruction": "q"}])
    rejects = tmp_path / "rej.json"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(tmp_path / "o.json"),
                "--on-error",
                "skip",
                "--rejects",
                str(rejects),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "left out (invalid)  2" in err
    rej = json.loads(rejects.read_text())
    assert [r["index"] for r in rej] == [20, 21] and "'output': missing" in rej[1]["detail"]


def test_multi_turn_records_are_left_out_and_counted(alpaca_file, tmp_path, capsys):
    src = alpaca_file(GOOD + [{"instruction": "q", "output": "a", "history": [["hi", "hello"]]}])
    assert main(["mosaic", str(src), str(tmp_path / "o.json")]) == 0
    assert "left out (multi-turn) 1" in capsys.readouterr().err


def test_malformed_json_names_file_and_line(tmp_path, capsys):
    src = tmp_path / "broken.json"
    src.write_text(
        '[\n {"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}\n]'
    )
    assert main(["mosaic", str(src), str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert f"{src}:3: invalid JSON" in err
    src = tmp_path / "broken.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n')
    assert main(["mosaic", str(src), str(tmp_path / "o.json")]) == 2
    assert f"{src}:2: invalid JSON" in capsys.readouterr().err
    assert main(["mosaic", str(tmp_path / "missing.json"), str(tmp_path / "o.json")]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err


def test_bad_options_are_clear_errors(alpaca_file, tmp_path, capsys):
    src = alpaca_file(GOOD)
    assert main(["mosaic", str(src), str(tmp_path / "o.json"), "--epochs", "0"]) == 2
    assert "epochs: must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["mosaic", str(src), str(tmp_path / "o.json"), "--strategies", "format+shuffle"])
    assert exc.value.code == 2
    assert (
        main(["mosaic", str(src), str(tmp_path / "o.json"), "--tokenizer", str(tmp_path / "nope")])
        == 2
    )
    assert "nope" in capsys.readouterr().err


def test_interrupted_run_leaves_no_output_and_resumes(alpaca_file, tmp_path, monkeypatch, capsys):
    import mosaic_it.engine.grouping as engine

    src = alpaca_file(GOOD * 10)
    out = tmp_path / "o.jsonl"
    out.write_text("previous\n")
    clean = tmp_path / "clean.jsonl"
    assert main(["mosaic", str(src), str(clean), "--workers", "1", "-q"]) == 0

    real = engine.Grouper.group_epoch

    def interrupted(self, admitted, epoch):
        if epoch == 2:
            yield from list(real(self, admitted, epoch))[:3]
            raise KeyboardInterrupt
        yield from real(self, admitted, epoch)

    monkeypatch.setattr(engine.Grouper, "group_epoch", interrupted)
    assert main(["mosaic", str(src), str(out), "--workers", "1", "-q"]) == 130
    assert out.read_text() == "previous\n"  # untouched: no partial output
    parts = tmp_path / ".o.jsonl.mosaic-parts"
    assert sorted(p.name for p in parts.glob("epoch-*.jsonl")) == [
        "epoch-00000.jsonl",
        "epoch-00001.jsonl",
    ]

    monkeypatch.setattr(engine.Grouper, "group_epoch", real)
    stats = tmp_path / "s.json"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--workers",
                "1",
                "--resume",
                "--stats",
                str(stats),
                "-q",
            ]
        )
        == 0
    )
    resumed = json.loads(stats.read_text())["summary"]
    assert resumed["resumed_epochs"] == [0, 1]
    clean_stats = tmp_path / "clean.json"
    assert (
        main(["mosaic", str(src), str(clean), "--workers", "1", "--stats", str(clean_stats), "-q"])
        == 0
    )
    fresh = json.loads(clean_stats.read_text())["summary"]
    for key in (
        "samples_written",
        "instructions_per_sample",
        "strategies",
        "rules",
        "formats",
        "tokens_in_samples",
        "max_sample_tokens",
    ):
        assert resumed[key] == fresh[key], key
    assert out.read_bytes() == clean.read_bytes()
    assert not parts.exists()


def test_output_is_identical_for_any_number_of_workers(alpaca_file, tmp_path):
    src = alpaca_file(GOOD * 10)
    outs = []
    for workers in ("1", "2", "3"):
        out = tmp_path / f"w{workers}.json"
        assert (
            main(["mosaic", str(src), str(out), "--workers", workers, "--epochs", "3", "-q"]) == 0
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    rows = json.loads(outs[0])
    assert sum(r["mosaic"]["instructions"] for r in rows) == 3 * len(GOOD) * 10


def test_jsonl_parts_are_joined_the_same_without_a_kernel_copy(alpaca_file, tmp_path, monkeypatch):
    src = alpaca_file(GOOD * 10)
    fast, slow = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    assert main(["mosaic", str(src), str(fast), "--workers", "2", "--epochs", "3", "-q"]) == 0

    def refuse(*args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    assert main(["mosaic", str(src), str(slow), "--workers", "2", "--epochs", "3", "-q"]) == 0
    assert fast.read_bytes() == slow.read_bytes()
    assert len(fast.read_text().splitlines()) > 3


def test_bundled_example_runs_as_a_subprocess(tmp_path):
    out = tmp_path / "example.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "mosaic_it.cli.main", "mosaic", "builtin:example", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "records read        120" in proc.stderr
    rows = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert sum(r["mosaic"]["instructions"] for r in rows) == 4 * 120


def test_rules_command_prints_the_bundled_pack(capsys):
    assert main(["rules"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "mosaic-it-default"
