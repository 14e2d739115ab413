"""A helper process of a run that dies ends the run at once, in one line naming what died.

Real runs, real processes, real signals: a run is started on enough data, its helper is found
by the name it gives itself (``/proc/PID/comm``: ``mosaic-reader``, ``mosaic-counter``,
``mosaic-epochs``), killed with SIGKILL as the out-of-memory killer would, and the run must
exit with status 3 within seconds, saying what died (and naming ``--resume`` where finished
epochs are kept).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mosaic_it.cli.main import EXIT_WORKER_DIED
from mosaic_it.engine.parallel import READ_AHEAD_BATCH, READ_AHEAD_BATCHES

from ..conftest import make_records

SRC = Path(__file__).resolve().parents[2] / "src"
# seconds from the kill to the run's exit: about one on a quiet machine; a hang never ends
ENDS_WITHIN = 30.0

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/comm").exists(), reason="needs /proc (Linux) to find the helpers"
)


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    """More records than the reader may hold ahead (so that it is still reading when
    killed), in a file past the size that is read ahead."""
    n = READ_AHEAD_BATCH * (READ_AHEAD_BATCHES + 8)
    path = tmp_path_factory.mktemp("deaths") / "big.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for r in make_records(n, seed=24):
            row = {"id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output}
            out.write(json.dumps(row) + "\n")
    return path


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "mosaic_it.cli.main", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _helpers(pid: int, name: str) -> list[int]:
    """The children of ``pid`` that named themselves ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(stat[1]) == pid and comm == name and stat[0] != "Z":
            found.append(int(entry.name))
    return found


def _kill_helper(run: subprocess.Popen, name: str, ready=lambda: True) -> float:
    """SIGKILL the first helper named ``name`` once ``ready()``; the time of the kill."""
    end = time.monotonic() + 300
    while time.monotonic() < end and run.poll() is None:
        helpers = _helpers(run.pid, name)
        if helpers and ready():
            os.kill(helpers[0], signal.SIGKILL)
            return time.monotonic()
        time.sleep(0.02)
    out, err = run.communicate()
    raise AssertionError(f"no {name} process was seen (exit {run.returncode}): {err}")


def _ends_with(run: subprocess.Popen, killed: float) -> str:
    try:
        err = run.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        run.kill()
        raise AssertionError("the run hangs after its helper died") from None
    took = time.monotonic() - killed
    print(f"ended {took:.2f} s after the kill")
    assert run.returncode == EXIT_WORKER_DIED, err
    assert took < ENDS_WITHIN, f"the run took {took:.1f} s to end after its helper died"
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_killed_reader_ends_the_run(big_input, tmp_path):
    run = _start([*_args(big_input, tmp_path), "--epochs", "2", "-q"], tmp_path)
    # killed while the parent counts what it sent (the counting workers are up): in the
    # middle of a message, mostly, which the parent then waited for forever
    counting = lambda: bool(_helpers(run.pid, "mosaic-counter"))  # noqa: E731
    err = _ends_with(run, _kill_helper(run, "mosaic-reader", ready=counting))
    assert "the process reading the input" in err and "killed by SIGKILL" in err, err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_killed_counting_worker_ends_the_run(big_input, tmp_path):
    run = _start([*_args(big_input, tmp_path), "--epochs", "2", "-q"], tmp_path)
    err = _ends_with(run, _kill_helper(run, "mosaic-counter"))
    assert "a worker process died while counting tokens" in err, err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_killed_epoch_worker_ends_the_run_and_names_resume(big_input, tmp_path):
    args = [*_args(big_input, tmp_path), "--epochs", "3"]
    parts = tmp_path / ".o.jsonl.mosaic-parts"
    run = _start([*args, "-q"], tmp_path)
    killed = _kill_helper(
        run, "mosaic-epochs", ready=lambda: (parts / "epoch-00000.jsonl").exists()
    )
    err = _ends_with(run, killed)
    assert "a worker process died while grouping epochs" in err, err
    assert "--resume" in err and parts.name in err, err
    assert not (tmp_path / "o.jsonl").exists()
    resumed = _start([*args, "--resume"], tmp_path)
    err = resumed.communicate(timeout=600)[1]
    assert resumed.returncode == 0, err
    assert "--resume: reused epoch(s) 0" in err


def _args(source: Path, where: Path) -> list[str]:
    return ["mosaic", str(source), str(where / "o.jsonl"), "--workers", "2", "--force-workers"]
