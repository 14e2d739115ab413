"""The Ray executor: the same job on a cluster, sharded (``mosaic-it mosaic --engine ray``).

Ray only schedules. Lines of JSONL (or rows of Parquet) are read with Ray Data from a file,
a directory or a glob on any filesystem Ray reads, and sent to ``shards`` by a stable key.
Each shard then runs, in one task, the pipeline the local executor runs: the one reader of
every input format (:func:`mosaic_it.io.files.records_from_raw`), the one engine
(:class:`mosaic_it.engine.mosaicker.Mosaicker`) and the one row assembly (samples, then originals,
then
multi-turn records passed through, :func:`shard_rows`), written by the one row writer
(:func:`mosaic_it.io.files.write_rows`) to ``shard-00003.jsonl`` (or ``.parquet``) in the output
directory. Each shard returns its :class:`~mosaic_it.engine.mosaicker.RunSummary`; the driver
merges them
into the summary the local engine writes.

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

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker
from mosaic_it.engine.summary import RunSummary
from mosaic_it.errors import OptionError
from mosaic_it.io.assemble import output_rows
from mosaic_it.io.files import (
    InputError,
    InvalidRecord,
    config_path_for,
    dumps,
    loads,
    records_from_raw,
    write_rows,
)
from mosaic_it.io.formats import check_format, conversation_to_row, sample_to_row
from mosaic_it.records import Record
from mosaic_it.rng import derive_seed

SHARD = "__mosaic_shard"
KEY = "__mosaic_key"
PATH = "__mosaic_path"
TEXT = "__mosaic_text"  # the record as one JSON text: one column type for any input format
SHARD_FORMATS = ("jsonl", "parquet")


@dataclass(frozen=True)
class ShardJob:
    """Everything a shard task needs besides its rows: the options of one run."""

    config: MosaicConfig
    output_dir: str
    shard_format: str = "jsonl"
    output_format: str = "alpaca"
    input_format: str | None = None
    on_error: str = "raise"
    keep_originals: bool = False
    keep_multiturn: bool = False

    def __post_init__(self) -> None:
        check_format(self.output_format)
        if self.input_format is not None:
            check_format(self.input_format)
        if self.shard_format not in SHARD_FORMATS:
            raise OptionError(f"shard format: jsonl or parquet, got {self.shard_format!r}")
        if self.on_error not in ("raise", "skip"):
            raise OptionError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")


def record_key(obj: Any, text: str) -> str:
    """A stable identity for a raw record: its id, or a hash of its JSON text."""
    rid = obj.get("id") if isinstance(obj, dict) else None
    if rid is not None and not isinstance(rid, bool):
        return f"id:{rid}"
    return "sha1:" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def shard_of(key: str, shards: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % shards


def _filesystem(uri: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def shard_name(shard: int, shard_format: str) -> str:
    return f"shard-{shard:05d}.{shard_format}"


def _raw_items(rows: list[dict[str, Any]], job: ShardJob, invalid: list[InvalidRecord]):
    """(index, location, object) of a shard's rows, in key order, as the readers yield them."""
    for index, row in enumerate(sorted(rows, key=lambda r: r[KEY])):
        key, where = row[KEY], f"{row.get(PATH) or 'input'}: record {row[KEY]}"
        try:
            obj = loads(row[TEXT])
        except ValueError as exc:
            if job.on_error == "raise":
                raise InputError(f"{where}: not JSON ({exc})") from None
            invalid.append(InvalidRecord(index, where, f"not JSON ({exc})"))
            continue
        if isinstance(obj, dict) and obj.get("id") is None and key.startswith("sha1:"):
            obj["id"] = key  # the content hash serves as the source id
        yield index, where, obj


def shard_rows(
    mosaicker: Mosaicker,
    records: list[Record],
    invalid: list[InvalidRecord],
    conversations: list[Any],
    job: ShardJob,
    shard: int,
) -> tuple[list[dict[str, Any]], set[str], dict[str, int]]:
    """One shard's output rows (samples, originals, passed-through records), their columns
    and how many of each kind, in the local engine's order."""
    fmt = job.output_format
    prepared = mosaicker.prepare(records, invalid)
    samples: list[dict[str, Any]] = []
    for epoch in range(job.config.epochs):
        for sample in mosaicker.run_epoch(prepared, epoch):
            row = sample_to_row(sample, fmt)
            row["mosaic"]["shard"] = shard
            samples.append(row)
    mosaicker.finish(prepared, 0.0)
    originals = (
        [prepared.grouper.records[i] for i in prepared.admitted] if job.keep_originals else []
    )
    passed = [conversation_to_row(c, fmt) for c in conversations]
    written = {"samples": len(samples), "originals": len(originals), "multi_turn": len(passed)}
    rows = list(output_rows(samples, originals, passed, fmt))
    columns = {c for r in passed for c in r}
    if any(r.system for r in records) or fmt in ("alpaca", "sharegpt"):
        columns.add("system")
    return rows, columns, written


def mosaic_shard(rows: list[dict[str, Any]], shard: int, job: ShardJob) -> dict[str, Any]:
    """Mosaic one shard's raw rows, write its file, return its summary as a dict."""
    invalid: list[InvalidRecord] = []
    conversations: list[Any] = []
    records = list(
        records_from_raw(
            _raw_items(rows, job, invalid),
            job.on_error,
            invalid,
            input_format=job.input_format,
            on_conversation=conversations.append if job.keep_multiturn else None,
        )
    )
    config = MosaicConfig.from_dict(
        {**job.config.to_dict(), "seed": derive_seed(job.config.seed, "shard", shard)}
    )
    mosaicker = Mosaicker(config)
    out_rows, columns, written = shard_rows(mosaicker, records, invalid, conversations, job, shard)
    name = shard_name(shard, job.shard_format)
    _write_shard(job.output_dir, name, out_rows, job.output_format, columns)
    summary = mosaicker.summary.to_dict()
    summary["shard"], summary["file"], summary["written"] = shard, name, written
    return summary


def _write_shard(
    output_dir: str, name: str, rows: list[dict[str, Any]], fmt: str, columns: set[str]
) -> None:
    """Write with the one row writer: in place on a local disk, else staged and copied."""
    if "://" not in output_dir:
        write_rows(Path(output_dir) / name, rows, fmt, columns)  # atomic: temporary, renamed
        return
    import pyarrow.fs as pafs

    fs, base = _filesystem(output_dir)
    with tempfile.TemporaryDirectory(prefix="mosaic-it-shard-") as tmp:
        write_rows(Path(tmp) / name, rows, fmt, columns)
        partial = f"{base}/.{name}.partial"
        pafs.copy_files(os.path.join(tmp, name), partial, destination_filesystem=fs)
        fs.move(partial, f"{base}/{name}")


def write_side_files(
    output_dir: str, stats: dict[str, Any], rejects: list[dict[str, Any]], config_text: str
) -> str:
    """``summary.json`` and ``rejects.jsonl`` into the output directory, and the effective
    options beside it (``OUTPUT.config.yaml``, as the local engine) or, on a remote
    filesystem, into it. Returns where the options went."""
    fs, base = _filesystem(output_dir)
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


def _quiet_ray_logs() -> None:
    """Ray's and Ray Data's own loggers (set up when they are imported) to errors only."""
    import ray.data  # noqa: F401  (its logging is configured on import)

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _keyed(batch: Any, *, parquet: bool, shards: int) -> Any:
    """A batch of input rows (a pyarrow table) as JSON texts with their file, key and shard."""
    import pyarrow as pa

    paths = batch.column("path").to_pylist()
    if parquet:
        objs: list[dict[str, Any] | None] = [
            {k: v for k, v in r.items() if k != "path"} for r in batch.to_pylist()
        ]
        texts = [dumps(o) for o in objs]
    else:
        texts = batch.column("text").to_pylist()
        objs = []
        for t in texts:
            try:
                objs.append(loads(t))
            except ValueError:
                objs.append(None)  # the shard task reports it, with its file
    keys = [record_key(o, t) for o, t in zip(objs, texts)]
    return pa.table(
        {
            TEXT: pa.array(texts, pa.string()),
            PATH: pa.array(paths, pa.string()),
            KEY: pa.array(keys, pa.string()),
            SHARD: pa.array([shard_of(k, shards) for k in keys], pa.int64()),
        }
    )


def run_ray(
    inputs: list[str], job: ShardJob, *, shards: int, quiet: bool = False
) -> tuple[RunSummary, list[dict[str, Any]]]:
    """Run a job on Ray (already started); returns the merged summary and each shard's."""
    import pyarrow as pa
    import ray.data

    if shards < 1:
        raise OptionError(f"shards: must be at least 1, got {shards}")
    context = ray.data.DataContext.get_current()
    if quiet:
        _quiet_ray_logs()
        context.enable_progress_bars = False
        if hasattr(context, "print_on_execution_start"):
            context.print_on_execution_start = False
    parquet = inputs[0].endswith(".parquet")
    if parquet:
        ds = ray.data.read_parquet(inputs, include_paths=True)
    else:
        ds = ray.data.read_text(inputs, include_paths=True, drop_empty_lines=True)
    fs, base = _filesystem(job.output_dir)
    fs.create_dir(base, recursive=True)

    def run_group(batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        return pa.table({"summary": [dumps(mosaic_shard(rows, rows[0][SHARD], job))]})

    try:
        out = (
            ds.map_batches(partial(_keyed, parquet=parquet, shards=shards), batch_format="pyarrow")
            .groupby(SHARD)
            .map_groups(run_group, batch_format="pyarrow")
            .take_all()
        )
    except Exception as exc:  # a task's error arrives wrapped by Ray
        raise _unwrap(exc, inputs) from None
    parts = sorted((loads(r["summary"]) for r in out), key=lambda s: s["shard"])
    summary = RunSummary()
    for part in parts:
        summary.merge(RunSummary.from_dict(part))
    return summary, parts


def _unwrap(exc: Exception, inputs: list[str]) -> Exception:
    """The error a shard task raised, as the local engine would have raised it."""
    cause = getattr(exc, "cause", None) or exc
    # (an InputError itself, not one of its kinds: LayoutError, SpecError... are told the same
    # way as any ValueError, as they were before they became InputErrors)
    itself = isinstance(exc, InputError) and type(cause) is InputError
    if isinstance(cause, (InputError, ValueError)) and not itself:
        lines = str(cause).strip().splitlines()
        return InputError(lines[-1] if lines else type(cause).__name__)
    if isinstance(exc, InputError):
        return exc
    text = str(exc)
    if "InputError" in text:
        lines = [line for line in text.splitlines() if "InputError" in line]
        return InputError(lines[-1].split("InputError:", 1)[-1].strip())
    mixed = re.search(r"Field (\S+) has incompatible types: ([^\n]+)", text)
    if mixed:
        field, types = mixed.group(1), mixed.group(2).strip()
        return InputError(
            f"{', '.join(inputs)}: column '{field}' holds values of different types ({types})"
        )
    return exc
