"""The conventions every command keeps: -q/-v with one meaning each, declared once; '-' as
standard input or output where rows stream (verify, score), a one-line refusal elsewhere."""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys

import pytest

from mosaic_it.cli.commands import COMMANDS
from mosaic_it.cli.main import build, main


@pytest.fixture
def stdin(monkeypatch):
    """Put bytes on standard input, as a pipe gives them."""

    def feed(data: bytes) -> None:
        stream = io.TextIOWrapper(io.BufferedReader(io.BytesIO(data)), encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", stream)

    return feed


@pytest.fixture(scope="module")
def mosaic_rows(tmp_path_factory):
    """One epoch of the bundled example mosaicked: rows with their spec and their output."""
    out = tmp_path_factory.mktemp("rows") / "out.jsonl"
    assert main(["mosaic", "builtin:example", str(out), "--epochs", "1", "--seed", "3", "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    """A small evaluation set, and responses that are its references (all pass)."""
    folder = tmp_path_factory.mktemp("eval")
    evalset = folder / "eval.jsonl"
    assert main(["make-eval", "builtin:example", str(evalset), "--n", "12", "-q"]) == 0
    rows = [json.loads(line) for line in evalset.read_text(encoding="utf-8").splitlines()]
    responses = folder / "responses.jsonl"
    responses.write_text(
        "".join(json.dumps({"id": r["id"], "response": r["reference"]}) + "\n" for r in rows),
        encoding="utf-8",
    )
    return evalset, responses, len(rows)


# ------------------------------------------------------------------------- -q and -v


def test_every_command_has_quiet_and_verbose_declared_once():
    _, commands = build()
    helps = set()
    for name, (_, arguments) in commands.items():
        flags = [a for a in arguments.actions if {"-q", "-v"} & set(a.option_strings)]
        assert [a.option_strings for a in flags] == [["-q", "--quiet"], ["-v", "--verbose"]], name
        helps.add(tuple(a.help for a in flags))
    assert len(helps) == 1  # one meaning each, the same text in every command
    assert len(commands) == len(COMMANDS)


def test_no_command_declares_quiet_or_verbose_itself():
    """They come from the registry (declare_verbosity), never from a command's own declare."""
    for command in COMMANDS:
        parser = argparse.ArgumentParser()
        from mosaic_it.cli.registry import Arguments

        arguments = Arguments(parser)
        command.declare(arguments)
        flags = {f for a in arguments.actions for f in a.option_strings}
        assert not flags & {"-q", "--quiet", "-v", "--verbose"}, command.name


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_quiet_and_verbose_exclude_each_other(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "-q", "-v"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_quiet_leaves_stderr_empty_and_stdout_as_it_is(tmp_path, capsys):
    assert main(["split", "builtin:example", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--held-out", "5", "-q"]) == 0  # fmt: skip
    assert capsys.readouterr().err == ""
    assert main(["make-eval", "builtin:example", str(tmp_path / "e.jsonl"), "--n", "6", "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["rules", "--path", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().endswith("rules.json") and captured.err == ""


def test_verbose_says_the_options_and_the_time_taken(tmp_path, capsys):
    assert main(["split", "builtin:example", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--held-out", "5", "-v"]) == 0  # fmt: skip
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("mosaic-it split: options: input='builtin:example' ")
    assert "count=5.0" in lines[0] and "seed=42" in lines[0]
    assert any(line.startswith("mosaic-it split: wrote 115 training records") for line in lines)
    assert "drawn with --seed 42" in lines[-2]
    assert lines[-1].startswith("mosaic-it split: done in ") and lines[-1].endswith(
        "(exit status 0)"
    )


def test_default_level_is_between(tmp_path, capsys):
    assert main(["split", "builtin:example", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--held-out", "5"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "wrote 115 training records" in err and "options:" not in err and "done in" not in err


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ([], ["a note", "a warning", "an error"]),
        (["-q"], ["an error"]),
        (["-v"], ["a detail", "a note", "a warning", "an error"]),
    ],  # fmt: skip
    ids=["default", "quiet", "verbose"],
)
def test_the_notes_of_the_layers_below_follow_quiet_and_verbose(level, shown, capsys):
    """Training and model loading log their notes under mosaic_it; a command prints them on
    stderr at its level, and leaves the logger as it found it."""
    from mosaic_it.cli.registry import NOTES, notes_on_stderr

    log = logging.getLogger("mosaic_it.apps.train")
    args = argparse.Namespace(command="train", quiet="-q" in level, verbose="-v" in level)
    before = NOTES.level, NOTES.propagate, list(NOTES.handlers)
    with notes_on_stderr(args):
        log.debug("a detail")
        log.info("a note")
        log.warning("a warning")
        log.error("an error")
    assert capsys.readouterr().err.splitlines() == shown
    assert (NOTES.level, NOTES.propagate, list(NOTES.handlers)) == before


# ----------------------------------------------------------------------- '-' streams


def test_verify_streams_stdin_to_stdout(mosaic_rows, stdin, capsys):
    rows = mosaic_rows.read_bytes()
    stdin(rows)
    assert main(["verify", "-", "-"]) == 0
    captured = capsys.readouterr()
    verdicts = [json.loads(line) for line in captured.out.splitlines()]
    assert len(verdicts) == len(rows.splitlines()) > 0
    # the engine's own outputs pass (those with neither labels nor tags are not verifiable)
    counts = {s: sum(v["status"] == s for v in verdicts) for s in ("pass", "not_verifiable")}
    assert counts["pass"] > 0 and sum(counts.values()) == len(verdicts)
    assert [v["id"] for v in verdicts] == list(range(len(verdicts)))  # no id: the row's index
    assert captured.err == (
        f"mosaic-it verify: {len(verdicts)} rows: {counts['pass']} pass, 0 fail, "
        f"{counts['not_verifiable']} not verifiable\n"
    )


def test_verify_writes_a_file_and_says_why_a_row_fails(mosaic_rows, tmp_path, capsys):
    out = tmp_path / "verdicts.jsonl"
    # the instruction is no answer to itself: every verifiable row fails, and -v says why
    assert main(["verify", str(mosaic_rows), str(out), "--field", "instruction", "-v"]) == 0
    verdicts = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    failed = [v for v in verdicts if v["status"] == "fail"]
    captured = capsys.readouterr()
    assert failed and captured.out == ""
    assert sum(": fail: " in line for line in captured.err.splitlines()) == len(failed)
    assert f"{len(failed)} fail" in captured.err and f"verdicts in {out}" in captured.err


def test_verify_row_without_spec_exits_2_and_checks_the_others(mosaic_rows, stdin, capsys):
    first = mosaic_rows.read_bytes().splitlines()[0]
    stdin(first + b'\n{"id": "x", "response": "1. hi"}\n')
    assert main(["verify", "-"]) == 2
    captured = capsys.readouterr()
    verdicts = [json.loads(line) for line in captured.out.splitlines()]
    assert [v["status"] for v in verdicts] == ["pass", "invalid"]
    assert verdicts[1]["error"] == "<stdin>:2 (record 1): field 'mosaic' (the spec): missing"
    assert "1 could not be checked" in captured.err


def test_verify_into_a_closed_pipe_ends_quietly(mosaic_rows, tmp_path):
    import subprocess

    done = subprocess.run(
        f"{sys.executable} -m mosaic_it.cli verify {mosaic_rows} | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(done.stdout) == 10
    assert "error" not in done.stderr and "Traceback" not in done.stderr


def test_score_reads_responses_from_stdin(eval_set, stdin, capsys):
    evalset, responses, n = eval_set
    stdin(responses.read_bytes())
    assert main(["score", str(evalset), "-"]) == 0
    assert "100.0" in capsys.readouterr().out


def test_score_reads_the_eval_set_from_stdin_and_writes_json_to_stdout(eval_set, stdin, capsys):
    evalset, responses, n = eval_set
    stdin(evalset.read_bytes())
    assert main(["score", "-", str(responses), "--out", "-", "-q"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout holds the JSON alone
    assert report["counts"]["eval_items"] == n and captured.err == ""
    stdin(evalset.read_bytes())
    assert main(["score", "-", str(responses), "--out", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["counts"]["scored"] == n
    assert "100.0" in captured.err  # the table goes to stderr


SERVED = ["--model", "m", "--base-url", "http://127.0.0.1:9/v1"]
REFUSED = [
    # (argv, the name the message gives): '-' where a command does not stream
    (["score", "-", "-"], "EVAL and RESPONSES are both '-'"),
    (["score", "E.jsonl", "R.jsonl", "--plot", "-"], "--plot: cannot be written to"),
    (["split", "-", "a.json", "b.json", "--held-out", "3"], "INPUT: cannot be read from"),
    (["split", "builtin:example", "-", "b.json", "--held-out", "3"], "TRAIN: cannot be written"),
    (["make-eval", "-", "e.jsonl"], "INPUT: cannot be read from"),
    (["make-eval", "builtin:example", "-"], "OUTPUT: cannot be written to"),
    (["make-eval", "builtin:example", "e.jsonl", "--balance", "-"], "--balance: cannot be written"),
    (["make-rl-prompts", "-", "o.jsonl", "--held-out", "h.json"], "INPUT: cannot be read"),
    (
        ["make-rl-prompts", "builtin:example", "o.jsonl", "--held-out", "-"],
        "--held-out -: cannot be read",
    ),
    (["make-rl-prompts", "builtin:example", "-", "--held-out", "h.json"], "OUTPUT: cannot be"),
    (["stats", "-"], "DATA: cannot be read from"),
    (["stats", "builtin:example", "--png", "-"], "--png: '-' (standard output) cannot hold"),
    (["stats", "builtin:example", "--report", "-"], "--report: cannot be written to"),
    (["cost", "-", "m.jsonl", "--no-time"], "ORIGINAL: cannot be read from"),
    (["cost", "o.jsonl", "m.jsonl", "--no-time", "--json", "-"], "--json: cannot be written"),
    (["verify", "-", "-", "--rules", "-"], "--rules: cannot be read from standard input"),
    (["judge", *SERVED, "-", "b.json", "c.json"], "PROMPTS: cannot be read from"),
    (["judge", *SERVED, "p.json", "b.json", "c.json", "--out", "-"], "--out: cannot be written"),
    (["answer", *SERVED, "--responses", "-", "builtin:mt-bench"], "--responses: cannot be"),
    (["eval", *SERVED, "--backend", "openai", "--eval-set", "-"], "--eval-set: cannot be read"),
    (
        ["eval", *SERVED, "--backend", "openai", "--eval-set", "E.jsonl", "--responses", "-"],
        "--responses: cannot be written",
    ),  # fmt: skip
    (["train", "-", "--model", "builtin:tiny-llama", "--output-dir", "o"], "DATA: cannot be"),
]


@pytest.mark.parametrize("argv, message", REFUSED, ids=[" ".join(a[:3]) for a, _ in REFUSED])
def test_dash_is_refused_in_one_line_where_nothing_streams(argv, message, tmp_path, capsys,
                                                           monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for name in ("E.jsonl", "R.jsonl", "h.json", "o.jsonl", "m.jsonl", "b.json", "c.json",
                 "p.json"):  # fmt: skip
        (tmp_path / name).write_text("[]" if name.endswith(".json") else "", encoding="utf-8")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mosaic-it: error: "), err
    assert message in err and "'-'" in err, err
