#!/usr/bin/env python3
"""Interrupt N real ``mosaic-it mosaic`` runs at random moments and check how each one ends.

    python benchmarks/interrupt_stress.py --runs 50 --load 2

Each run works on its own output in a scratch directory; after a random delay (uniform over a
calibrated run's length, so every phase is hit: starting, reading, counting, epochs, writing)
it gets SIGINT, SIGTERM or SIGHUP, sent as a terminal or a scheduler would (SIGINT and SIGHUP
to the whole process group, SIGTERM to the run alone, or to the group at random). For each run
it records:

* whether it was gone within ``--hang-after`` seconds of the signal (else a *hang*: the
  process group is killed and the run counted);
* its exit status (128 + the signal, or 0 if it finished first);
* whether its one-line message names ``--resume`` and says what was kept (a signal that comes
  while the interpreter is still starting, before the tool's first line runs, ends it by the
  signal's default action, with nothing written and no message: counted apart);
* what it left beside its output: only the parts ``--resume`` needs (a ``.NAME.mosaic-parts``
  directory holding ``manifest.json`` and finished ``epoch-*.jsonl``) may remain; anything else
  (a lock, a ``.partial``, a stage file) is a *leftover*.

With ``--resume-check``, every run that kept parts is resumed and its output compared with an
uninterrupted run's (byte-identical expected). ``--load K`` keeps K busy processes running
meanwhile. Prints one JSON line per run and a ``summary`` line; exits 1 if any run hung, left
a leftover, ended with a traceback or an unexpected status, or resumed to a different output.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}
PART = re.compile(r"epoch-\d{5}\.jsonl|manifest\.json")


def _busy() -> None:
    while True:
        pass


def _as_from_a_shell() -> None:
    """In the child before exec: signals default and unblocked, as a terminal gives them."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(SIGNALS.values()))
    for signum in SIGNALS.values():
        signal.signal(signum, signal.SIG_DFL)


def _command(data: Path, output: Path, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mosaic_it.cli",
        "mosaic",
        str(data),
        str(output),
        "--epochs",
        str(args.epochs),
        "--workers",
        str(args.workers),
        "--force-workers",
        "--seed",
        "7",
        "-q",
    ]


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_as_from_a_shell,
    )


def make_input(path: Path, records: int) -> None:
    """``records`` Alpaca records: the bundled example repeated, each instruction made unique."""
    from mosaic_it.io.readers import example_path

    base = [json.loads(line) for line in example_path().read_text(encoding="utf-8").splitlines()]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(records):
            r = dict(base[i % len(base)])
            r["id"] = f"r{i}"
            r["instruction"] = f"{r['instruction']} (variant {i // len(base)})"
            out.write(json.dumps(r) + "\n")


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    """What a run left that is neither an input nor parts --resume needs."""
    found = []
    for entry in sorted(os.listdir(directory)):
        if entry in keep:
            continue
        path = directory / entry
        if entry.endswith(".mosaic-parts") and path.is_dir() and not path.is_symlink():
            found += [f"{entry}/{p}" for p in sorted(os.listdir(path)) if not PART.fullmatch(p)]
            continue
        found.append(entry)
    return found


def one_run(i: int, data: Path, work: Path, args: argparse.Namespace, length: float) -> dict:
    rng = random.Random(args.seed * 1000 + i)
    name = rng.choice(list(SIGNALS))
    to_group = name != "SIGTERM" or rng.random() < 0.5
    delay = rng.uniform(0.05, args.window * length)
    directory = work / f"run-{i:03d}"
    directory.mkdir()
    output = directory / "o.jsonl"
    run = _start(_command(data, output, args), directory)
    time.sleep(delay)
    sent = time.monotonic()
    try:
        (os.killpg if to_group else os.kill)(run.pid, SIGNALS[name])
    except ProcessLookupError:
        pass
    hung = False
    try:
        _, err = run.communicate(timeout=args.hang_after)
    except subprocess.TimeoutExpired:
        hung = True
        os.killpg(run.pid, signal.SIGKILL)
        _, err = run.communicate()
    gone = time.monotonic() - sent
    err = err.strip()
    finished = run.returncode == 0
    # the interpreter still starting, before the tool's first line: the signal's default
    # action ends it (nothing written, nothing to say)
    before_start = run.returncode == -SIGNALS[name] and not err
    expected = {0, 128 + SIGNALS[name]} | ({-SIGNALS[name]} if before_start else set())
    row = {
        "run": i,
        "signal": name,
        "to": "group" if to_group else "parent",
        "delay_s": round(delay, 2),
        "gone_s": round(gone, 2),
        "hung": hung,
        "status": run.returncode,
        "status_ok": run.returncode in expected,
        "finished_first": finished,
        "before_start": before_start,
        "message": err,
        "one_line": finished or err.count("\n") == 0,
        "traceback": "Traceback" in err,
        "names_resume": finished or before_start or "--resume" in err,
        "says_what_was_kept": finished
        or before_start
        or "kept" in err
        or "nothing was written" in err
        or "no output was written" in err,
        "leftovers": leftovers(directory, {"o.jsonl", "o.jsonl.config.yaml"}),
        "kept_parts": (directory / ".o.jsonl.mosaic-parts").is_dir(),
    }
    if args.resume_check and row["kept_parts"] and not hung:
        resumed = subprocess.run(
            [*_command(data, output, args), "--resume"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=False,
        )
        row["resumed_status"] = resumed.returncode
        row["resumed_same"] = (
            resumed.returncode == 0
            and output.read_bytes() == (work / "reference.jsonl").read_bytes()
        )
        row["leftovers_after_resume"] = leftovers(directory, {"o.jsonl", "o.jsonl.config.yaml"})
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return row


def _commit() -> str | None:
    """The commit of the code measured (None outside a git checkout)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", "-n", type=int, default=50)
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--load", type=int, default=0, help="busy processes meanwhile")
    parser.add_argument("--hang-after", type=float, default=10.0)
    parser.add_argument(
        "--window",
        type=float,
        default=1.0,
        help="signals come within this fraction of the calibrated run's length",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume-check", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="mosaic-interrupt-"))
    work.mkdir(parents=True, exist_ok=True)
    load = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(args.load)]
    for p in load:
        p.start()
    try:
        data = work / "data.jsonl"
        make_input(data, args.records)
        t0 = time.monotonic()
        reference = subprocess.run(
            _command(data, work / "reference.jsonl", args), capture_output=True, text=True
        )
        length = time.monotonic() - t0
        if reference.returncode != 0:
            print(reference.stderr, file=sys.stderr)
            return 2
        print(f"calibration: an uninterrupted run takes {length:.1f} s", file=sys.stderr)
        rows = []
        for i in range(args.runs):
            row = one_run(i, data, work, args, length)
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    finally:
        for p in load:
            p.kill()
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    interrupted = [r for r in rows if not r["finished_first"] and not r["before_start"]]
    resumed = [r for r in rows if "resumed_same" in r]
    summary = {
        "summary": True,
        "command": "python benchmarks/interrupt_stress.py " + " ".join(sys.argv[1:]),
        "commit": _commit(),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "runs": len(rows),
        "calibrated_run_s": round(length, 1),
        "load_processes": args.load,
        "interrupted": len(interrupted),
        "finished_first": sum(r["finished_first"] for r in rows),
        "ended_before_the_tool_started": sum(r["before_start"] for r in rows),
        "by_signal": {s: sum(1 for r in interrupted if r["signal"] == s) for s in SIGNALS},
        "hangs": sum(r["hung"] for r in rows),
        "slowest_exit_s": max((r["gone_s"] for r in rows), default=0),
        "messages_naming_resume": sum(r["names_resume"] for r in interrupted),
        "messages_saying_what_was_kept": sum(r["says_what_was_kept"] for r in interrupted),
        "multi_line_messages": sum(not r["one_line"] for r in rows),
        "tracebacks": sum(r["traceback"] for r in rows),
        "bad_status": sum(not r["status_ok"] for r in rows),
        "runs_with_leftovers": sum(bool(r["leftovers"]) for r in rows),
        "kept_parts": sum(r["kept_parts"] for r in rows),
        "resumed": len(resumed),
        "resumed_identical": sum(r["resumed_same"] for r in resumed),
    }
    print(json.dumps(summary), flush=True)
    failed = (
        summary["hangs"]
        or summary["runs_with_leftovers"]
        or summary["tracebacks"]
        or summary["bad_status"]
        or summary["multi_line_messages"]
        or summary["resumed_identical"] != len(resumed)
        or summary["messages_naming_resume"] != len(interrupted)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
