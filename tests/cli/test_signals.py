"""Real signals sent to real runs well into their work: SIGINT (to the process group, as
Ctrl-C), SIGTERM (to the run alone, as ``kill`` or a scheduler) and SIGHUP (the terminal
closed). Each must end the run within seconds, say what it kept, and leave beside its output
exactly what ``--resume`` needs; a later run removes what a killed run left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_safety import (  # noqa: F401  (scratch: a fixture)
    _bigger_input,
    _start,
    _wait_for,
    scratch,
)

ROOT = Path(__file__).resolve().parents[2]
RUN = ["mosaic", "big.jsonl", "o.jsonl", "--epochs", "40", "--workers", "2", "--force-workers"]
PARTS = ".o.jsonl.mosaic-parts"
PART = re.compile(r"epoch-\d{5}\.jsonl|manifest\.json")


def _send(run: subprocess.Popen, signum: int, to_group: bool) -> tuple[str, float]:
    (os.killpg if to_group else os.kill)(run.pid, signum)
    sent = time.monotonic()
    err = run.communicate(timeout=60)[1]
    return err, time.monotonic() - sent


def _solo(root: Path) -> bytes:
    solo = _start(["mosaic", "big.jsonl", "solo.jsonl", *RUN[3:], "-q"], root)
    solo.communicate(timeout=300)
    data = (root / "solo.jsonl").read_bytes()
    for name in ("solo.jsonl", "solo.jsonl.config.yaml"):
        (root / name).unlink()
    return data


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGHUP, True)],
    ids=["SIGINT-group", "SIGTERM-run", "SIGHUP-group"],
)
def test_signal_during_epochs_keeps_only_what_resume_needs(scratch, signum, to_group):  # noqa: F811
    if signal.getsignal(signum) == signal.SIG_IGN:  # a run inherits it, and rightly keeps going
        why = "the tests were started in the background by a script, or under nohup"
        pytest.skip(f"{signal.Signals(signum).name} is ignored in this process ({why})")
    _bigger_input(scratch)
    before = set(os.listdir(scratch))
    run = _start(RUN, scratch, session=True)
    parts = scratch / PARTS
    _wait_for(
        lambda: any(parts.glob("epoch-*.jsonl")) or run.poll() is not None, "a finished epoch"
    )
    assert run.poll() is None, "the run ended before it could be interrupted"
    err, took = _send(run, signum, to_group)
    assert took < 10, f"the run took {took:.1f} s to end"
    assert run.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"interrupted ({name}); o.jsonl was not written or changed" in err, err
    assert f"kept in {PARTS}: run the same command with --resume" in err, err
    # beside the output: the parts directory and nothing else (no lock, no .partial)
    assert set(os.listdir(scratch)) == before | {PARTS}
    kept = sorted(os.listdir(parts))
    assert "manifest.json" in kept and all(PART.fullmatch(p) for p in kept), kept
    if signum != signal.SIGTERM:
        return
    resumed = _start([*RUN, "--resume", "-q"], scratch)
    err = resumed.communicate(timeout=300)[1]
    assert resumed.returncode == 0, err
    assert set(os.listdir(scratch)) == before | {"o.jsonl", "o.jsonl.config.yaml"}
    assert (scratch / "o.jsonl").read_bytes() == _solo(scratch)


def test_signal_before_any_epoch_leaves_nothing(scratch):  # noqa: F811
    _bigger_input(scratch)
    before = set(os.listdir(scratch))
    run = _start(RUN, scratch, session=True)
    lock = scratch / ".o.jsonl.mosaic-lock"
    _wait_for(lambda: lock.exists() or run.poll() is not None, "the run to take its lock")
    err, took = _send(run, signal.SIGTERM, False)
    assert took < 10 and run.returncode == 143, err
    assert "nothing was kept for --resume" in err and err.count("\n") == 1, err
    assert set(os.listdir(scratch)) == before


def test_what_a_killed_run_left_is_removed_by_the_next_one(scratch):  # noqa: F811
    """SIGKILL leaves everything (no handler runs): the lock, the unfinished parts and the
    output's temporary file; the next run on that output removes them, --resume or not."""
    _bigger_input(scratch)
    before = set(os.listdir(scratch))
    run = _start(RUN, scratch, session=True)
    _wait_for(
        lambda: len(list((scratch / PARTS).glob("epoch-*.jsonl"))) >= 2 or run.poll() is not None,
        "two finished epochs",
    )
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    left = set(os.listdir(scratch)) - before
    assert PARTS in left and ".o.jsonl.mosaic-lock" in left
    assert any(n.endswith(".partial") for n in left), left  # the output's temporary file
    resumed = _start([*RUN, "--resume", "-q"], scratch)
    err = resumed.communicate(timeout=300)[1]
    assert resumed.returncode == 0, err
    assert set(os.listdir(scratch)) == before | {"o.jsonl", "o.jsonl.config.yaml"}


def test_interrupt_stress_five_runs(tmp_path):
    """benchmarks/interrupt_stress.py with 5 runs: no hang, every message names --resume, no
    leftover, no traceback, and every resumed run writes the uninterrupted run's bytes."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "interrupt_stress.py"),
            "--runs",
            "5",
            "--records",
            "2400",
            "--epochs",
            "6",
            "--resume-check",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["runs"] == 5 and summary["hangs"] == 0
    assert summary["messages_naming_resume"] == summary["interrupted"]
    assert summary["runs_with_leftovers"] == 0 and summary["tracebacks"] == 0


DROPPED = """
import os, signal, sys, time
from mosaic_it.signals import Interrupted, raise_on_signals
raise_on_signals()
def kill_me():  # as if SIGTERM came while a worker was being forked
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))  # Python runs the handler here, in a hook that drops what it raises
os.register_at_fork(after_in_parent=kill_me)
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(2)
    print("the signal was lost")
except Interrupted as exc:
    print("interrupted by", exc.name)
"""


def test_a_signal_dropped_by_a_fork_hook_still_ends_the_run():
    """Python drops an exception raised in a fork hook (the run once went on for seconds after
    a SIGHUP that came as a worker was forked); it is delivered again, and ends the run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", DROPPED], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.strip() == "interrupted by SIGTERM", done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
