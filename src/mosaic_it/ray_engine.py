"""The Ray engine: the same job on a cluster, sharded (``mosaic-it mosaic --engine ray``).

Records are read with Ray Data (JSONL or Parquet files, a directory or a glob of them, any
filesystem Ray can read), assigned to ``shards`` by a stable key, and each shard is mosaicked by
the single-machine engine in one task: same epochs, exact budget, provenance and rejects. Each
shard writes its own output file (``shard-00003.jsonl`` or ``.parquet``) into the output
directory, so nothing large passes through the driver; the driver writes ``summary.json`` and
``rejects.jsonl`` beside them.

Differences from the single-machine engine, by design:

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
import re
from collections import Counter
from pathlib import Path
from typing import Any

from .api import MosaicConfig, Mosaicker
from .io import InputError, InvalidRecord, dumps, dumps_bytes, record_from_alpaca
from .records import Record
from .rng import derive_seed

SHARD = "__mosaic_shard"
KEY = "__mosaic_key"
PATH = "__mosaic_path"


def record_key(row: dict[str, Any]) -> str:
    """A stable identity for a raw record: its id, or a hash of its content."""
    rid = row.get("id")
    if rid is not None and not isinstance(rid, bool):
        return f"id:{rid}"
    content = "\x00".join(str(row.get(k) or "") for k in ("system", "instruction", "input", "output"))
    return "sha1:" + hashlib.sha1(content.encode()).hexdigest()[:16]


def shard_of(key: str, shards: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % shards


def _filesystem(uri: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def _write_shard(out_uri: str, shard: int, fmt: str, rows: list[dict[str, Any]]) -> str:
    """Write one shard's samples, atomically (temporary name, then move)."""
    fs, base = _filesystem(out_uri)
    name = f"shard-{shard:05d}.{fmt}"
    final, tmp = f"{base}/{name}", f"{base}/.{name}.partial"
    if fmt == "jsonl":
        data = b"".join(dumps_bytes(r) + b"\n" for r in rows)
        with fs.open_output_stream(tmp) as out:
            out.write(data)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(
            [{**r, "mosaic": dumps(r["mosaic"])} for r in rows],
            schema=pa.schema([(c, pa.string()) for c in ("instruction", "input", "output", "system", "mosaic")]),
        ) if rows else pa.table({c: pa.array([], pa.string()) for c in ("instruction", "input", "output", "system", "mosaic")})
        pq.write_table(table, tmp, filesystem=fs)
    fs.move(tmp, final)
    return name


def mosaic_shard(rows: list[dict[str, Any]], shard: int, config: MosaicConfig, out_uri: str,
                 fmt: str, on_error: str) -> dict[str, Any]:
    """Mosaic one shard's raw rows; write its file; return its summary as a dict."""
    rows = sorted(rows, key=lambda r: r[KEY])
    records: list[Record] = []
    invalid: list[InvalidRecord] = []
    for index, row in enumerate(rows):
        raw = {k: v for k, v in row.items() if not k.startswith("__mosaic") and v is not None}
        raw.setdefault("id", row[KEY] if row[KEY].startswith("sha1:") else raw.get("id"))
        where = f"{row.get(PATH) or 'input'}: record {row[KEY]}"
        try:
            records.append(record_from_alpaca(raw, index))
        except ValueError as exc:
            if on_error == "raise" and "multi-turn" not in str(exc):
                raise InputError(f"{where}: {exc}") from None
            reason = "multi-turn" if "multi-turn" in str(exc) else "invalid"
            invalid.append(InvalidRecord(index, where, str(exc), reason=reason))
    shard_config = MosaicConfig.from_dict({**config.to_dict(), "seed": derive_seed(config.seed, "shard", shard)})
    mosaicker = Mosaicker(shard_config)
    samples = [s.to_record() for s in mosaicker.run(records, invalid)]
    for s in samples:
        s.setdefault("system", "")
        s["mosaic"]["shard"] = shard
    name = _write_shard(out_uri, shard, fmt, samples)
    summary = mosaicker.summary.to_dict()
    summary["shard"], summary["file"] = shard, name
    return summary


def resolve_inputs(spec: str) -> list[str]:
    """A file, a directory of shards, or a glob -> the input files (URIs pass through)."""
    import glob

    if "://" in spec:
        return [spec]
    path = Path(spec)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir()
                       if p.suffix in (".jsonl", ".ndjson", ".parquet") and not p.name.startswith("."))
    elif any(ch in spec for ch in "*?["):
        files = sorted(glob.glob(spec))
    else:
        files = [spec] if path.exists() else []
    if not files:
        raise InputError(f"{spec}: no JSONL or Parquet input files found")
    return files


def run_ray(
    inputs: list[str],
    output_dir: str,
    config: MosaicConfig,
    *,
    shards: int,
    output_format: str = "jsonl",
    on_error: str = "raise",
    address: str | None = None,
    num_cpus: int | None = None,
) -> dict[str, Any]:
    """Run a job on Ray; returns the merged summary (also written to ``summary.json``)."""
    import pyarrow as pa
    import ray

    if shards < 1:
        raise ValueError(f"shards: must be at least 1, got {shards}")
    if output_format not in ("jsonl", "parquet"):
        raise ValueError(f"output format for the ray engine: jsonl or parquet, got {output_format!r}")
    if not ray.is_initialized():
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            init["address"] = address
        elif num_cpus:
            init["num_cpus"] = num_cpus
        ray.init(**init)
    import ray.data

    parquet = all(str(p).endswith(".parquet") for p in inputs)
    if parquet:
        ds = ray.data.read_parquet(inputs, include_paths=True)
    else:
        ds = ray.data.read_json(inputs, lines=True, include_paths=True)
    fs, base = _filesystem(output_dir)
    fs.create_dir(base, recursive=True)

    def add_shard(batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        keys = [record_key(r) for r in rows]
        batch = batch.append_column(KEY, pa.array(keys, pa.string()))
        batch = batch.append_column(SHARD, pa.array([shard_of(k, shards) for k in keys], pa.int64()))
        if "path" in batch.column_names:
            batch = batch.rename_columns([PATH if c == "path" else c for c in batch.column_names])
        return batch

    def run_group(batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        summary = mosaic_shard(rows, rows[0][SHARD], config, output_dir, output_format, on_error)
        return pa.table({"summary": [json.dumps(summary)]})

    try:
        out = (
            ds.map_batches(add_shard, batch_format="pyarrow")
            .groupby(SHARD)
            .map_groups(run_group, batch_format="pyarrow")
            .take_all()
        )
    except Exception as exc:  # a task's InputError arrives wrapped by Ray
        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, InputError) or "InputError" in str(exc):
            raise InputError(str(cause).strip().splitlines()[-1]) from None
        mixed = re.search(r"Field (\S+) has incompatible types: ([^\n]+)", str(exc))
        if mixed:
            field, types = mixed.group(1), mixed.group(2).strip()
            raise InputError(
                f"{', '.join(inputs)}: field '{field}' holds values of different types ({types}); "
                "every record needs a string there (the local engine names the record)"
            ) from None
        raise
    summaries = sorted((json.loads(r["summary"]) for r in out), key=lambda s: s["shard"])
    merged = merge_summaries(summaries)
    merged["shards"] = shards
    rejects = [r for s in summaries for r in s["rejected"] + s["invalid"]]
    with fs.open_output_stream(f"{base}/rejects.jsonl") as f:
        f.write(b"".join(dumps_bytes(r) + b"\n" for r in rejects))
    with fs.open_output_stream(f"{base}/summary.json") as f:
        f.write(json.dumps({"config": config.to_dict(), "summary": merged}, indent=2).encode())
    return merged


def merge_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"files": [s["file"] for s in summaries]}
    for key in ("records_read", "records_mosaicked", "samples_written", "tokens_in_records",
                "tokens_in_samples", "duplicate_ids"):
        total[key] = sum(s[key] for s in summaries)
    total["max_sample_tokens"] = max((s["max_sample_tokens"] for s in summaries), default=0)
    for key in ("instructions_per_sample", "strategies", "rules", "rules_replaced", "formats",
                "left_out"):
        c: Counter[str] = Counter()
        for s in summaries:
            c.update(s.get(key, {}))
        total[key] = dict(sorted(c.items(), key=lambda kv: (len(kv[0]), kv[0])))
    n = sum(total["instructions_per_sample"].values())
    total["mean_instructions_per_sample"] = round(
        sum(int(k) * v for k, v in total["instructions_per_sample"].items()) / n, 4) if n else 0.0
    total["rejected"] = [r for s in summaries for r in s["rejected"]]
    total["invalid"] = [r for s in summaries for r in s["invalid"]]
    return total

