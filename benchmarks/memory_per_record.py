#!/usr/bin/env python3
"""Peak memory of a whole ``mosaic-it mosaic`` run, and what each record costs, at 1M and 10M.

    python benchmarks/memory_per_record.py --sizes 1000000,10000000 --kinds real,tiny \\
        --data ../shared/data/alpaca_en_demo.json --workdir /tmp/mosaic-memory

Inputs (JSONL, written once into ``--workdir`` and reused; never into the repository):

* ``real``: the Alpaca file of ``--data`` repeated, record i with id "r{i}" (about 860 bytes a
  record: 860 MB at 1M, 8.6 GB at 10M);
* ``tiny``: records of a few words (``{"instruction": "Say 456.", "output": "456"}``, record i
  saying i % 1000 and answering i % 997, about 45 bytes): what a record costs beyond its text;
* ``distinct``: the same with i itself (``"Say 123456."``, ``"123456"``): the words its
  summaries hold are new with every record (no table of them is shared between records).

Each run uses the CLI's default options (2 workers where the machine has 2 cores or more) and
is sampled every ``--interval`` seconds: the summed PSS of the process tree (the CLI, its
reader, counting and epoch workers: shared pages counted once), the peak, and who held what
at the peak (helpers named by ``/proc/PID/comm``). Printed, one JSON line per run:
``peak_tree_mb`` and ``bytes_per_record`` (the peak over the records), then one line per kind
with ``marginal_bytes_per_record`` between the smallest and the largest size (what one more
record costs, the fixed part of the tree left out). ``--src DIR`` runs the package found in
``DIR`` (another checkout's ``src``) for before/after comparisons; ``--epochs`` changes the
one option (4 by default, as the CLI's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_mosaic import _pss_kb, _tree

REPO = Path(__file__).resolve().parent.parent
KINDS = ("real", "tiny", "distinct")


def write_input(kind: str, n: int, data: Path | None, workdir: Path) -> Path:
    path = workdir / f"{kind}_{n}.jsonl"
    if path.exists():
        return path
    source = json.loads(data.read_text(encoding="utf-8")) if kind == "real" and data else []
    if kind == "real" and not source:
        raise SystemExit("--data: the Alpaca JSON file the real inputs repeat is needed")
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as out:
        lines = []
        for i in range(n):
            if kind == "real":
                row = {**source[i % len(source)], "id": f"r{i}"}
            elif kind == "tiny":
                row = {"instruction": f"Say {i % 1000}.", "output": f"{i % 997}"}
            else:
                row = {"instruction": f"Say {i}.", "output": f"{i}"}
            lines.append(json.dumps(row, ensure_ascii=False))
            if len(lines) == 10_000:
                out.write("\n".join(lines) + "\n")
                lines.clear()
        if lines:
            out.write("\n".join(lines) + "\n")
    partial.rename(path)
    return path


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def measure(cmd: list[str], env: dict[str, str], interval: float) -> dict[str, Any]:
    """Run ``cmd``, sampling its tree; the peak and who held it."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb, at_peak, when = 0, {}, 0.0
    while child.poll() is None:
        sizes = {pid: _pss_kb(pid) for pid in _tree(child.pid)}
        total = sum(sizes.values())
        if total > peak_kb:
            peak_kb, when = total, time.perf_counter() - start
            at_peak = {}
            for pid, kb in sizes.items():
                at_peak.setdefault(_comm(pid), []).append(round(kb / 1024))
        time.sleep(interval)
    err = child.stderr.read().decode(errors="replace") if child.stderr else ""
    child.wait()
    return {
        "exit": child.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_tree_mb": round(peak_kb / 1024, 1),
        "peak_at_seconds": round(when, 1),
        "at_peak_mb": at_peak,
        **({"stderr_tail": err[-1000:]} if child.returncode else {}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1000000,10000000", help="records per run, comma-separated")
    p.add_argument("--kinds", default="real,tiny", help=f"comma-separated subset of {KINDS}")
    p.add_argument("--data", type=Path, help="the Alpaca JSON the real inputs repeat")
    p.add_argument("--workdir", type=Path, help="where inputs and outputs go (default: a temp dir)")
    p.add_argument("--src", type=Path, default=REPO / "src", help="the package's source to run")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    args = p.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    kinds = [k for k in args.kinds.split(",") if k]
    if any(k not in KINDS for k in kinds):
        p.error(f"--kinds: choose from {', '.join(KINDS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mosaic-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
    for kind in kinds:
        peaks: dict[int, float] = {}
        for n in sizes:
            source = write_input(kind, n, args.data, workdir)
            output = workdir / f"out_{kind}_{n}.jsonl"
            cmd = [sys.executable, "-m", "mosaic_it.cli.main", "mosaic", str(source), str(output)]
            cmd += ["--epochs", str(args.epochs), "-q"]
            line = {"kind": kind, "records": n, "input_mb": round(source.stat().st_size / 2**20)}
            line.update(measure(cmd, env, args.interval))
            output.unlink(missing_ok=True)
            if line["exit"] == 0:
                peaks[n] = line["peak_tree_mb"]
                line["bytes_per_record"] = round(line["peak_tree_mb"] * 2**20 / n)
            print(json.dumps(line), flush=True)
        if len(peaks) > 1:
            low, high = min(peaks), max(peaks)
            marginal = (peaks[high] - peaks[low]) * 2**20 / (high - low)
            print(
                json.dumps(
                    {
                        "kind": kind,
                        "between": [low, high],
                        "marginal_bytes_per_record": round(marginal),
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
