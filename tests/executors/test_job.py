"""One job, three doors: the command line, the Python API and Ray run the same MosaicJob."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mosaic_it import LocalExecutor, MosaicConfig, MosaicJob, mosaic_file
from mosaic_it.cli.main import build, main
from mosaic_it.executors.job import STDIO

from ..conftest import make_records, needs


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def source(tmp_path):
    rows = [
        {"id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output}
        for r in make_records(90, seed=5, long_every=30)
    ]
    rows[7]["output"] = 5  # invalid: skipped and listed
    return _write_jsonl(tmp_path / "in.jsonl", rows)


def _files(out):
    """The bytes of a run's output and side files; the stats without their timings."""
    stats = json.loads((out.parent / f"{out.stem}.stats.json").read_text())
    stats["summary"].pop("seconds")
    return {
        "output": out.read_bytes(),
        "rejects": (out.parent / f"{out.stem}.rejects.jsonl").read_bytes(),
        "stats": stats,
        "options": out.with_name(out.name + ".config.yaml").read_text(encoding="utf-8"),
    }


def _interrupt_epoch(monkeypatch, epoch):
    """Make the run stop in ``epoch`` as a Ctrl-C would; returns how to undo it."""
    import mosaic_it.engine.grouping as engine

    real = engine.Grouper.group_epoch

    def interrupted(self, admitted, e):
        if e == epoch:
            raise KeyboardInterrupt
        yield from real(self, admitted, e)

    monkeypatch.setattr(engine.Grouper, "group_epoch", interrupted)
    return lambda: monkeypatch.setattr(engine.Grouper, "group_epoch", real)


@pytest.mark.parametrize("workers,resume", [(1, False), (2, False), (1, True)])
def test_the_cli_and_the_api_write_the_same_bytes(source, tmp_path, monkeypatch, workers, resume):
    config = MosaicConfig(epochs=3, max_tokens=1024, seed=9)
    found = []
    for door in ("cli", "api"):
        out = tmp_path / door / "mosaic.jsonl"
        out.parent.mkdir()
        side = {
            "rejects": str(out.parent / "mosaic.rejects.jsonl"),
            "stats": str(out.parent / "mosaic.stats.json"),
        }
        argv = ["mosaic", str(source), str(out), "--epochs", "3", "--max-tokens", "1024"]
        argv += ["--seed", "9", "--on-error", "skip", "--keep-originals", "--progress", "off"]
        argv += ["--rejects", side["rejects"], "--stats", side["stats"], "-q"]
        argv += ["--workers", str(workers)] + (["--resume"] if resume else [])

        def api():
            return mosaic_file(
                source,
                out,
                config,
                workers=workers,
                resume=resume,
                on_error="skip",
                keep_originals=True,
                **side,
            )

        if resume:  # an interrupted run first: epoch 0 is kept for --resume, then reused
            undo = _interrupt_epoch(monkeypatch, 1)
            if door == "cli":
                assert main(argv) == 130
            else:
                with pytest.raises(Exception, match="--resume"):
                    api()
            undo()
        if door == "cli":
            assert main(argv) == 0
        else:
            result = api()
            assert result.summary.samples_written == result.stats["summary"]["samples_written"]
            assert result.report.startswith("mosaic-it: wrote ")
        files = _files(out)
        if resume:
            assert files["stats"]["summary"]["resumed_epochs"] == [0]
        found.append(files)
    assert found[0] == found[1]
    assert found[0]["rejects"].count(b"\n") == 4  # 3 too long, 1 invalid


def test_the_job_names_every_option_of_the_command_in_its_order(tmp_path):
    _, commands = build()
    _, arguments = commands["mosaic"]
    declared = [a.dest for a in arguments.actions if a.dest not in ("help", "config")]
    job = MosaicJob("in.jsonl", tmp_path / "o.jsonl")
    assert list(job.options(LocalExecutor())) == declared


def test_a_job_is_checked_and_locked_like_the_command(tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", [{"instruction": "a", "output": "b"}])
    with pytest.raises(ValueError, match="same file as INPUT"):
        mosaic_file(src, src)
    with pytest.raises(ValueError, match="standard input or output"):
        LocalExecutor(resume=True).run(MosaicJob(STDIO, tmp_path / "o.jsonl"))
    with pytest.raises(ValueError, match="OUTPUT only"):
        MosaicJob(src, tmp_path / "o.jsonl", rejects=STDIO)


def _cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "mosaic_it.cli.main", "mosaic", *args],
        input=stdin,
        capture_output=True,
        timeout=300,
    )


def test_dash_reads_standard_input_and_writes_standard_output(tmp_path):
    rows = [{"instruction": r.instruction, "output": r.output} for r in make_records(30, seed=3)]
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    args = ["--epochs", "2", "--seed", "4", "--workers", "1"]
    assert _cli(str(src), str(tmp_path / "file.jsonl"), *args, "-q").returncode == 0
    expected = (tmp_path / "file.jsonl").read_bytes()
    piped = _cli("-", "-", *args, stdin=src.read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == expected  # clean data: the account went to stderr
    assert b"to standard output" in piped.stderr
    assert _cli("-", str(tmp_path / "o.jsonl"), *args, "-q", stdin=src.read_bytes()).returncode == 0
    assert (tmp_path / "o.jsonl").read_bytes() == expected
    assert not (tmp_path / "-.config.yaml").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["-", "o.jsonl", "--resume"], "cannot be resumed"),
        (["-", "o.jsonl", "--workers", "2"], "read by one process"),
        (["in.jsonl", "-", "--dataset-info", "info.json"], "no file to name"),
        (["in.jsonl", "o.jsonl", "--stats", "-"], "OUTPUT only"),
    ],
)
def test_dash_is_refused_in_one_line_where_it_cannot_work(
    tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.chdir(tmp_path)
    _write_jsonl(tmp_path / "in.jsonl", [{"instruction": "a", "output": "b"}])
    assert main(["mosaic", *args, "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.jsonl").exists()


def test_ray_is_refused_with_dash(tmp_path, capsys):
    needs("ray")
    assert main(["mosaic", "-", str(tmp_path / "out"), "--engine", "ray", "-q"]) == 2
    assert "'-' (standard input or output) does not apply" in capsys.readouterr().err


def test_the_ray_executor_runs_the_same_job(tmp_path):
    ray = needs("ray")
    from mosaic_it import RayExecutor

    rows = [
        {"instruction": r.instruction, "input": r.input, "output": r.output}
        for r in make_records(60, seed=8, long_every=20)
    ]
    rows[4]["output"] = 5
    d = tmp_path / "in"
    d.mkdir()
    _write_jsonl(d / "a.jsonl", rows[:30])
    _write_jsonl(d / "b.jsonl", rows[30:])
    job = MosaicJob(
        d,
        tmp_path / "out",
        MosaicConfig(epochs=2),
        on_error="skip",
        rejects=str(tmp_path / "rejects.jsonl"),
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = RayExecutor(shards=2, quiet=True).run(job)
    finally:
        ray.shutdown()
    summary = result.summary
    assert result.output["type"] == "shards" and len(result.output["files"]) == 2
    assert summary.workers == 2 and summary.seconds["group"] > 0
    assert summary.seconds["ray_start"] >= 0 and summary.seconds["shards_wall"] > 0
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    invalid = [r for r in rejects if r["reason"] == "invalid"]
    assert invalid[0]["index"] == 4 and "a.jsonl:5 (record 4)" in invalid[0]["detail"]
    long = sorted(r["index"] for r in rejects if r["reason"] == "too_long")
    # records 19, 39 and 59 of make_records are the long ones: index 19 of a.jsonl, 9 and 29
    # of b.jsonl (their index in their file, not in their shard)
    assert sorted(long) == [9, 19, 29]
    assert (tmp_path / "out.config.yaml").read_text().count("engine: ray") == 1


def test_a_reader_that_stops_early_ends_the_stream_quietly():
    """`mosaic-it mosaic IN - | head`: the closed pipe is the reader's choice, not an error."""
    run = subprocess.run(
        f"{sys.executable} -m mosaic_it.cli.main mosaic builtin:example - | head -c 10; "
        'exit "${PIPESTATUS[0]}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        timeout=300,
    )
    assert run.returncode == 0 and len(run.stdout) == 10
    assert b"error" not in run.stderr
