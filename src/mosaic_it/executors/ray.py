"""The Ray executor: the same job on a cluster, sharded (``mosaic-it mosaic --engine ray``).

Ray only schedules, with plain tasks. Lines of JSONL (or rows of Parquet) are read from a
file, a directory or a glob on any filesystem pyarrow reads, and sent to ``shards`` by a
stable key. Each input file is read by one task, which gives every record its index and line
in that file (as the local engine's messages and rejects do) and returns one part per shard
(Ray's object store hands the parts on: no shuffle, no Ray Data plan; this cut a run's fixed
cost by several seconds, see ``docs/results/performance.md``). Each shard then runs, in one
task, the pipeline the local executor runs: the one reader of
every input format (:func:`mosaic_it.io.readers.records_from_raw`), the one engine
(:class:`mosaic_it.engine.mosaicker.Mosaicker`) and the one row assembly
(:class:`mosaic_it.io.assemble.RowAssembly`), written by the one row writer
(:func:`mosaic_it.io.writers.write_rows`) to ``shard-00003.jsonl`` (or ``.parquet``) in the
output directory. Each shard returns its :class:`~mosaic_it.engine.summary.RunSummary`; the
driver merges them into the summary the local engine writes. The job's checks, output guard
and side files are those of every executor (:meth:`mosaic_it.executors.job.Executor.run`).

Differences from the local engine, by design:

* samples never cross shards: each shard is grouped on its own, so each epoch ends each shard
  with one possibly short sample (the instructions-per-sample distribution is otherwise the
  same; the benchmark shows it);
* a shard's records are ordered by their key before grouping and its seed is derived from
  (seed, shard), so a run is deterministic for a fixed number of shards, not across numbers;
* records without an ``id`` are identified by a content hash (``sha1:...``), since a global
  row index is not known on a cluster.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mosaic_it.engine.processes import usable_cpus
from mosaic_it.engine.summary import RunSummary
from mosaic_it.errors import EnvironmentFault, InputError, OptionError
from mosaic_it.executors.job import Executed, Executor, MosaicJob, Note, side_file_outputs
from mosaic_it.executors.shards import (
    SHARD_FORMATS,
    filesystem,
    mosaic_parts,
    read_parts,
    read_whole,
)
from mosaic_it.io.jsoncodec import dumps
from mosaic_it.io.outputs import Output
from mosaic_it.io.writers import OUTPUT_KINDS, config_path_for
from mosaic_it.limits import MAX_SHARDS, bound

# options of a job the ray engine cannot honour per shard, and why
RAY_REFUSED = {
    "split": "the ray engine reads JSONL or Parquet files, not datasets splits",
    "dataset_info": "LLaMA-Factory would read summary.json and rejects.jsonl beside the shards",
}
RAY_OUTPUT_FILES = ("shard-*.jsonl", "shard-*.parquet", "summary.json", "rejects.jsonl")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ERROR_PREFIX = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception): ")


def refusal(names: list[str], reasons: Mapping[str, str]) -> str:
    """The one line that refuses options the ray engine cannot honour, naming each."""
    return "--engine ray: " + "; ".join(
        f"--{n.replace('_', '-')} does not apply ({reasons[n]})" for n in names
    )


@dataclass(frozen=True)
class RayExecutor(Executor):
    """Run a job on Ray: ``shards`` groups of records mosaicked independently, one task
    each (0: two per CPU of the cluster), on the cluster at ``address`` (None: a local one
    started here, or the one this process already joined); the output is a directory of
    ``shard_format`` files."""

    name: ClassVar[str] = "ray"
    shards: int = 0
    address: str | None = None
    shard_format: str = "jsonl"
    quiet: bool = False

    def options(self) -> dict[str, Any]:
        return {
            "workers": 0,
            "force_workers": False,
            "engine": "ray",
            "shards": self.shards,
            "shard_format": self.shard_format,
            "ray_address": self.address,
            "resume": False,
        }

    def check(self, job: MosaicJob) -> None:
        refused = [name for name in RAY_REFUSED if getattr(job, name)]
        if job.reads_stdin or job.writes_stdout:
            raise OptionError(
                "--engine ray: '-' (standard input or output) does not apply (the ray engine "
                "reads files and writes a directory of shards)"
            )
        if refused:
            raise OptionError(refusal(refused, RAY_REFUSED))
        bound(
            "--shards",
            self.shards,
            at_least=0,
            at_most=MAX_SHARDS,
            whole=True,
            why="0: two per CPU; each shard is a Ray task and a file of its own",
        )
        if self.shard_format not in SHARD_FORMATS:
            raise OptionError(f"shard format: jsonl or parquet, got {self.shard_format!r}")
        if Path(str(job.output)).suffix.lower() in OUTPUT_KINDS:
            raise OptionError(
                f"{job.output}: the ray engine writes a directory of shards; name a "
                "directory (no file extension)"
            )
        try:
            import ray  # noqa: F401
        except ImportError:
            raise EnvironmentFault("--engine ray needs Ray: pip install 'mosaic-it[ray]'") from None
        resolve_inputs(str(job.source))

    def guarded_inputs(self, job: MosaicJob) -> dict[str, Any]:
        inputs = super().guarded_inputs(job)
        source = str(inputs.pop("INPUT"))
        files = {f"INPUT {i}": i for i in [source, *resolve_inputs(source)] if "://" not in i}
        return {**files, **inputs}

    def guarded_outputs(self, job: MosaicJob) -> list[Output]:
        local = "://" not in str(job.output)
        return [
            Output(job.output if local else None, "OUTPUT", "dir"),
            *side_file_outputs(job),
            Output(config_path_for(str(job.output)) if local else None, "OUTPUT.config.yaml"),
        ]

    def execute(self, job: MosaicJob, note: Note) -> Executed:
        import ray

        output = str(job.output)
        if "://" not in output:  # this tool's own directory (the guard checked): no old shards
            for pattern in RAY_OUTPUT_FILES:
                for old in Path(output).glob(pattern):
                    old.unlink()
        t0 = time.perf_counter()
        start_ray(self.address, quiet=self.quiet)
        cpus = int(ray.cluster_resources().get("CPU", 1)) if self.address else usable_cpus()
        shards = self.shards if self.shards > 0 else 2 * cpus
        started = time.perf_counter()
        summary, parts = run_ray(
            resolve_inputs(str(job.source)),
            job,
            shards=shards,
            shard_format=self.shard_format,
            quiet=self.quiet,
        )
        summary.workers = min(shards, max(cpus, 1))  # shard tasks that could run side by side
        summary.seconds["ray_start"] = started - t0
        summary.seconds["shards_wall"] = time.perf_counter() - started
        written = {
            k: sum(p["written"][k] for p in parts) for k in ("samples", "originals", "multi_turn")
        }
        return Executed(
            summary,
            {
                "format": job.output_format,
                "type": "shards",
                "shards": shards,
                "shard_format": self.shard_format,
                "files": [p["file"] for p in parts],
                "rows": written,
            },
        )

    def place_options(self, job: MosaicJob, stats: Mapping[str, Any], text: str) -> str:
        summary = stats["summary"]
        rejects = summary["rejected"] + summary["invalid"]
        return write_shard_dir_files(str(job.output), dict(stats), rejects, text)


def write_shard_dir_files(
    output_dir: str, stats: dict[str, Any], rejects: list[dict[str, Any]], config_text: str
) -> str:
    """``summary.json`` and ``rejects.jsonl`` into the output directory, and the effective
    options beside it (``OUTPUT.config.yaml``, as the local engine) or, on a remote
    filesystem, into it. Returns where the options went."""
    fs, base = filesystem(output_dir)
    config_file = f"{base}/config.yaml" if "://" in output_dir else f"{base}.config.yaml"
    files = {
        f"{base}/summary.json": json.dumps(stats, indent=2, ensure_ascii=False) + "\n",
        f"{base}/rejects.jsonl": "".join(dumps(r) + "\n" for r in rejects),
        config_file: config_text,
    }
    for path, text in files.items():
        partial = f"{os.path.dirname(path)}/.{os.path.basename(path)}.partial"
        with fs.open_output_stream(partial) as out:
            out.write(text.encode("utf-8"))
        fs.move(partial, path)
    return config_file if "://" in output_dir else str(config_path_for(output_dir))


def resolve_inputs(spec: str) -> list[str]:
    """A file, a directory of shards, or a glob -> the input files (URIs pass through)."""
    import glob

    if "://" in spec:
        files = [spec]
    else:
        path = Path(spec)
        if path.is_dir():
            files = sorted(
                str(p)
                for p in path.iterdir()
                if not p.name.startswith(".")
                and p.suffix in (".jsonl", ".ndjson", ".parquet", ".json")
            )
        elif any(ch in spec for ch in "*?["):
            files = sorted(glob.glob(spec))
        else:
            files = [spec] if path.exists() else []
    if not files:
        raise InputError(f"{spec}: no JSONL or Parquet input files found")
    lists = [f for f in files if f.endswith(".json")]
    if lists:
        raise InputError(
            f"{lists[0]}: the ray engine reads JSONL or Parquet, not a JSON list; write it as "
            "JSONL (one record per line) or use the local engine"
        )
    if len({f.endswith(".parquet") for f in files}) > 1:
        raise InputError(f"{spec}: mixes JSONL and Parquet files; give one type per run")
    return files


def start_ray(address: str | None, num_cpus: int | None = None, quiet: bool = False) -> None:
    """Connect to a cluster (or start a local one) unless this process already has."""
    import ray

    if quiet:
        _quiet_ray_logs()
    if ray.is_initialized():
        return
    init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if quiet:
        init["logging_level"] = logging.ERROR
    if address:
        init["address"] = address
    elif num_cpus:
        init["num_cpus"] = num_cpus
    ray.init(**init)


def _quiet_ray_logs(level: int = logging.ERROR) -> None:
    """Ray's own loggers (set up when it is imported) to ``level``."""
    import ray  # noqa: F401  (its logging is configured on import)

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(level)


def run_ray(
    inputs: list[str],
    job: MosaicJob,
    *,
    shards: int,
    shard_format: str = "jsonl",
    quiet: bool = False,
) -> tuple[RunSummary, list[dict[str, Any]]]:
    """Run a job's shards on Ray (already started); returns the merged summary and each
    shard's. Each input file is read by one task (its records keep their index and line)."""
    import ray

    if shards < 1:
        raise OptionError(f"shards: must be at least 1, got {shards}")
    # a task's error is reported once, in one line, by the command (see _unwrap): Ray's own
    # report of it (tracebacks, colour codes) stays out of the way
    _quiet_ray_logs(logging.CRITICAL)
    output_dir = str(job.output)
    fs, base = filesystem(output_dir)
    fs.create_dir(base, recursive=True)
    mosaic = ray.remote(mosaic_parts)
    # one reading task per file; its parts go straight from the object store to their shard
    by_file: list[list[Any]]  # per file, an object reference per shard
    if shards > 1:
        read: Any = ray.remote(read_parts).options(num_returns=shards)  # a list of references
        by_file = [read.remote(path, shards) for path in inputs]
    else:
        by_file = [[ray.remote(read_whole).remote(path)] for path in inputs]
    try:
        job_ref = ray.put(job)
        out = ray.get(
            [
                mosaic.remote(
                    shard, job_ref, output_dir, shard_format, *[f[shard] for f in by_file]
                )
                for shard in range(shards)
            ]
        )
    except Exception as exc:  # a task's error arrives wrapped by Ray
        raise _unwrap(exc, inputs) from None
    parts = [part for part in out if part is not None]  # shards no record fell in: no file
    summary = RunSummary()
    for part in parts:
        summary.merge(RunSummary.from_dict(part))
    return summary, parts


def _unwrap(exc: Exception, inputs: list[str]) -> Exception:
    """The error a shard task raised, as the local engine would have raised it: one line, no
    Ray traceback, no colour codes. An error that is no input error is left as it is (a bug)."""
    cause: BaseException = exc
    for _ in range(8):  # Ray wraps a task's error (RayTaskError, with .cause), maybe twice
        inner = getattr(cause, "cause", None)
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    text = _ANSI.sub("", str(cause)).strip()
    if isinstance(cause, (InputError, ValueError)):
        last = text.splitlines()[-1] if text else type(cause).__name__
        return InputError(_ERROR_PREFIX.sub("", last))
    found = re.findall(r"(?:InputError|ValueError): ([^\n]+)", _ANSI.sub("", str(exc)))
    if found:
        return InputError(found[-1].strip())
    mixed = re.search(r"Field (\S+) has incompatible types: ([^\n]+)", text)
    if mixed:
        field, types = mixed.group(1), mixed.group(2).strip()
        return InputError(
            f"{', '.join(inputs)}: column '{field}' holds values of different types ({types})"
        )
    return exc
