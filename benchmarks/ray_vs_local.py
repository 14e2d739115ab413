#!/usr/bin/env python3
"""The Ray engine against the local engine on the same machine, start-up shown apart.

    python benchmarks/ray_vs_local.py --records 52002,1000000 --rounds 2 \\
        --data ../shared/data/alpaca_en_demo.json --workdir /tmp/mosaic-ray --label after

Every case is one run of the whole ``mosaic-it mosaic`` command in a fresh process (what a user
waits for), the engines taken in turn, round after round (A/B/A/B: a slow spell of a shared
machine hits each alike). The cases:

* ``local1``, ``local2``: the local engine, ``--workers 1`` and ``2``;
* ``ray``: ``--engine ray`` starting a Ray of its own in the process (``ray.init``);
* ``cluster``: ``--engine ray --ray-address`` to a two-node cluster on this machine (two
  ``ray start`` processes, a head and a worker, ``--num-cpus 1`` each), started once before
  the rounds (its start-up is reported once) and stopped at the end.

Each line holds the wall time of the command, the summary's ``seconds`` (``ray_start``: Ray's
start-up or the connection to the cluster; ``shards_wall``: the sharded run; ``read_and_count``
and ``group``: summed over the shards for Ray), ``work`` (wall less Ray's start-up), the
one-minute load average before and after, and what the output holds (samples, a digest of the
output files: the same for local1 and local2, and for ray and cluster, which shard alike).
Inputs (the ``--data`` records repeated, record i with id ``r{i}``) are written once into
``--workdir``, never into the repository; ``--src DIR`` runs another checkout's package (the
code before a change). Results: printed, and written to ``benchmarks/results/ray/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_mosaic import expand, load_source, write_jsonl

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES = ("local1", "local2", "ray", "cluster")


def load() -> float:
    return os.getloadavg()[0]


def input_file(workdir: Path, data: Path, n: int) -> Path:
    path = workdir / f"alpaca_{n}.jsonl"
    if not path.exists():
        part = path.with_suffix(".partial")
        write_jsonl(expand(load_source(data), n), part)
        part.rename(path)
    return path


def digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


class Cluster:
    """A head and a worker node on this machine (``ray start``), one CPU each."""

    def __init__(self, env: dict[str, str], cpus: int = 1) -> None:
        # Ray 2.60 asks a joining node (and a driver) for the head's token (~/.ray/auth_token)
        self.env, self.cpus = {**env, "RAY_AUTH_MODE": "token"}, cpus
        self.temp = Path(tempfile.mkdtemp(prefix="mr-", dir="/tmp"))  # short: socket paths
        self.port = 6400 + os.getpid() % 500
        self.address = f"127.0.0.1:{self.port}"
        self.ray = str(Path(sys.executable).with_name("ray"))

    def _start(self, *args: str) -> None:
        cmd = [self.ray, "start", f"--num-cpus={self.cpus}", "--disable-usage-stats"]
        cmd += ["--node-ip-address=127.0.0.1", *args]
        subprocess.run(cmd, env=self.env, check=True, capture_output=True, text=True)

    def start(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self._start(
            "--head",
            f"--port={self.port}",
            f"--temp-dir={self.temp}",
            "--include-dashboard=false",
        )
        t1 = time.perf_counter()
        self._start(f"--address={self.address}")
        t2 = time.perf_counter()
        return {"head_s": round(t1 - t0, 2), "worker_s": round(t2 - t1, 2)}

    def stop(self) -> None:
        # only this cluster's processes: those whose session lives under its temp dir
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(self.temp) in cmdline:
                pids.append(int(proc.name))
        for sig in (15, 9):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(3)
        shutil.rmtree(self.temp, ignore_errors=True)


def run_case(
    case: str,
    src: Path,
    out_dir: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    address: str | None,
) -> dict[str, Any]:
    out = out_dir / case if case in ("ray", "cluster") else out_dir / f"{case}.jsonl"
    stats = out_dir / f"{case}.stats.json"
    cmd = [sys.executable, "-m", "mosaic_it.cli.main", "mosaic", str(src), str(out), "-q"]
    cmd += ["--epochs", str(args.epochs), "--stats", str(stats)]
    if case.startswith("local"):
        cmd += ["--workers", case[-1]]
    else:
        cmd += ["--engine", "ray", "--shards", str(args.shards)]
        if address:
            cmd += ["--ray-address", address]
    before = load()
    t0 = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    line: dict[str, Any] = {"case": case, "wall_s": round(wall, 2), "load_before": before}
    line["load_after"] = load()
    if run.returncode != 0:
        line["error"] = run.stderr[-2000:]
        return line
    summary = json.loads(stats.read_text())["summary"]
    seconds = {k: round(v, 2) for k, v in summary["seconds"].items()}
    files = sorted(out.glob("shard-*")) if out.is_dir() else [out]
    line.update(
        seconds=seconds,
        start_s=seconds.get("ray_start", 0.0),
        work_s=round(wall - seconds.get("ray_start", 0.0), 2),
        samples=summary["samples_written"],
        records_mosaicked=summary["records_mosaicked"],
        digest=digest(files),
    )
    return line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", default="52002", help="sizes, comma-separated (default 52002)")
    p.add_argument("--cases", default=",".join(CASES), help="of " + ",".join(CASES))
    p.add_argument("--rounds", type=int, default=1, help="turns over the cases (default 1)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--shards", type=int, default=4, help="Ray shards (default 4: 2 per CPU)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/alpaca_en_demo.json")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mosaic-ray")
    p.add_argument("--src", type=Path, default=REPO / "src", help="the package's src directory")
    p.add_argument("--src-commit", default=None, help="the commit --src was taken from")
    p.add_argument("--label", default="run", help="name of the results file")
    p.add_argument("--results", type=Path, default=HERE / "results" / "ray")
    args = p.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        p.error(f"unknown cases: {sorted(unknown)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve()), "RAY_DISABLE_USAGE_STATS": "1"}
    env.pop("RAY_ADDRESS", None)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines: list[dict[str, Any]] = []
    cluster = Cluster(env) if "cluster" in cases else None
    try:
        started = cluster.start() if cluster else None
        if cluster and started:
            print(f"cluster: head {started['head_s']} s, worker {started['worker_s']} s")
        for n in (int(x) for x in args.records.split(",")):
            src = input_file(args.workdir, args.data, n)
            for r in range(args.rounds):
                for case in cases:
                    out_dir = args.workdir / f"out_{n}"
                    out_dir.mkdir(exist_ok=True)
                    address = cluster.address if case == "cluster" and cluster else None
                    case_env = cluster.env if case == "cluster" and cluster else env
                    line = run_case(case, src, out_dir, case_env, args, address)
                    line.update(records=n, round=r)
                    print(json.dumps(line), flush=True)
                    lines.append(line)
    finally:
        if cluster:
            cluster.stop()
    report = summarize(lines, cases)
    for row in report:
        print(json.dumps(row))
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{args.label}.json"
    meta = {
        "commit": commit,
        "src": _portable(args.src),
        # the code run: this checkout's, or --src's (a tree exported from a commit has no git)
        "src_commit": commit if args.src.resolve() == (REPO / "src") else args.src_commit,
        "epochs": args.epochs,
        "shards": args.shards,
        "cpus": os.cpu_count(),
        "cluster_start": started,
        "command": " ".join(sys.argv),
    }
    out.write_text(json.dumps({**meta, "median": report, "runs": lines}, indent=1) + "\n")
    print(f"written: {out}")
    return 0


def summarize(lines: list[dict[str, Any]], cases: list[str]) -> list[dict[str, Any]]:
    """Per size and case: medians, the ratio to local2, and whether the outputs agree."""
    rows = []
    for n in sorted({x["records"] for x in lines}):
        ok = [x for x in lines if x["records"] == n and "error" not in x]
        med: dict[str, dict[str, Any]] = {}
        for case in cases:
            runs = [x for x in ok if x["case"] == case]
            if not runs:
                continue
            med[case] = {
                k: round(statistics.median(x[k] for x in runs), 2)
                for k in ("wall_s", "start_s", "work_s", "load_before")
            }
            med[case]["digests"] = sorted({x["digest"] for x in runs})
            med[case]["samples"] = sorted({x["samples"] for x in runs})
        base = med.get("local2", {}).get("wall_s")
        for case, m in med.items():
            if base:
                m["wall_vs_local2"] = round(m["wall_s"] / base, 2)
                m["work_vs_local2"] = round(m["work_s"] / base, 2)
            rows.append({"records": n, "case": case, **m})
        same = {  # only where both cases ran
            f"{a}={b}": med[a]["digests"] == med[b]["digests"]
            for a, b in (("local1", "local2"), ("ray", "cluster"))
            if a in med and b in med
        }
        rows.append({"records": n, "same_outputs": same})
    return rows


def _portable(path: Path) -> str:
    """A path as results may hold it: relative to the repository, else its last two parts."""
    resolved = path.resolve()
    if resolved.is_relative_to(REPO):
        return str(resolved.relative_to(REPO))
    return str(Path(*resolved.parts[-2:]))


if __name__ == "__main__":
    sys.exit(main())
