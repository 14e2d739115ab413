"""What one Ray task does (:mod:`mosaic_it.executors.ray`): read one input file, or mosaic one
shard and write its file. Pure functions of their arguments: nothing here imports Ray.

A file is read whole by one task, so every record keeps its index and line in its file; each
record gets a stable key (its id, or a hash of its text) and the shard the key falls in, and
the task returns one list of rows per shard (the key, index, location and JSON text of each:
parsed once here for the key, once in the shard). A
shard's records are sorted by key, read by the one reader of every format, mosaicked by the
one engine with a seed derived from (seed, shard), and assembled into rows by the one
:class:`~mosaic_it.io.assemble.RowAssembly`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker
from mosaic_it.errors import InputError
from mosaic_it.executors.job import MosaicJob
from mosaic_it.io.assemble import RowAssembly
from mosaic_it.io.jsoncodec import dumps, loads
from mosaic_it.io.readers import InvalidRecord, records_from_raw
from mosaic_it.io.writers import write_rows
from mosaic_it.rng import derive_seed

SHARD_FORMATS = ("jsonl", "parquet")
READ_BATCH = 8192  # rows of a Parquet file read at once


def record_key(obj: Any, text: str) -> str:
    """A stable identity for a raw record: its id, or a hash of its JSON text."""
    rid = obj.get("id") if isinstance(obj, dict) else None
    if rid is not None and not isinstance(rid, bool):
        return f"id:{rid}"
    return "sha1:" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def shard_of(key: str, shards: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % shards


def filesystem(uri: str) -> tuple[Any, str]:
    """A pyarrow filesystem and the path on it, for a local path or a URI."""
    import pyarrow.fs as pafs

    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def shard_name(shard: int, shard_format: str) -> str:
    return f"shard-{shard:05d}.{shard_format}"


def _file_texts(path: str) -> Iterator[tuple[int, str, str, Any]]:
    """(index, location, JSON text, object or None) of every record of one input file."""
    fs, base = filesystem(path)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        index = 0
        with fs.open_input_file(base) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=READ_BATCH):
                for obj in batch.to_pylist():
                    yield index, f"{path}: record {index}", dumps(obj), obj
                    index += 1
        return
    index = 0
    if "://" in path:  # a remote file is fetched whole; a local one is read line by line
        with fs.open_input_stream(base) as stream:
            lines: Iterable[bytes] = stream.read().splitlines()
    else:
        lines = _local_lines(base)
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        text = raw.decode("utf-8", "replace")
        try:
            obj = loads(text)
        except ValueError:
            obj = None  # the shard task reports it, with its file and line
        yield index, f"{path}:{lineno} (record {index})", text, obj
        index += 1


def _local_lines(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        for line in handle:
            yield line.rstrip(b"\r\n")


Row = tuple[str, int, str, str]  # a record's key, index in its file, location and JSON text


def read_parts(path: str, shards: int) -> list[list[Row]]:
    """One input file as the rows of each shard (``shards`` lists, in the file's order): one
    task reads a file whole and hands each shard task its part, with no shuffle between."""
    parts: list[list[Row]] = [[] for _ in range(shards)]
    for index, where, text, obj in _file_texts(path):
        key = record_key(obj, text)
        parts[shard_of(key, shards)].append((key, index, where, text))
    return parts


def read_whole(path: str) -> list[Row]:
    """One input file as the rows of the one shard (a task with one return value)."""
    return read_parts(path, 1)[0]


def _raw_items(
    rows: list[Row], job: MosaicJob, invalid: list[InvalidRecord], indices: list[int]
) -> Iterator[tuple[int, str, Any]]:
    """(index, location, object) of a shard's rows, in key order, as the readers yield them;
    the index is the record's index in its file. ``indices`` gets the index of each row as it
    is handed on."""
    for key, index, where, text in sorted(rows, key=itemgetter(0)):
        try:
            obj = loads(text)
        except ValueError as exc:
            if job.on_error == "raise":
                raise InputError(f"{where}: not JSON ({exc})") from None
            invalid.append(InvalidRecord(index, where, f"not JSON ({exc})"))
            continue
        if isinstance(obj, dict) and obj.get("id") is None and key.startswith("sha1:"):
            obj["id"] = key  # the content hash serves as the source id
        indices.append(index)
        yield index, where, obj


def mosaic_parts(
    shard: int, job: MosaicJob, output_dir: str, shard_format: str, *parts: list[Row]
) -> dict[str, Any] | None:
    """One shard task: its parts of every input file (in the inputs' order) mosaicked; None
    for a shard no record falls in (it writes no file)."""
    rows = [row for part in parts for row in part]
    return mosaic_shard(rows, shard, job, output_dir, shard_format) if rows else None


def mosaic_shard(
    rows: list[Row], shard: int, job: MosaicJob, output_dir: str, shard_format: str
) -> dict[str, Any]:
    """Mosaic one shard's raw rows, write its file, return its summary as a dict."""
    invalid: list[InvalidRecord] = []
    assembly = RowAssembly(
        job.output_format, keep_originals=job.keep_originals, keep_multiturn=job.keep_multiturn
    )
    handed: list[int] = []  # the file index of every raw row handed to the reader, in order
    taken: list[int] = []  # ... and of every record it gave the engine
    items = _raw_items(rows, job, invalid, handed)

    def noted() -> Iterator[Any]:
        for record in records_from_raw(
            items,
            job.on_error,
            invalid,
            input_format=job.input_format,
            on_conversation=assembly.on_conversation,
        ):
            taken.append(handed[-1])
            yield record

    config = MosaicConfig.from_dict(
        {**job.config.to_dict(), "seed": derive_seed(job.config.seed, "shard", shard)}
    )
    mosaicker = Mosaicker(config)
    prepared = mosaicker.prepare(assembly.noting_systems(noted()), invalid)
    t0 = time.perf_counter()
    samples: list[dict[str, Any]] = []
    for epoch in range(config.epochs):
        for sample in mosaicker.run_epoch(prepared, epoch):
            row = assembly.sample_row(sample)
            row["mosaic"]["shard"] = shard
            samples.append(row)
    summary = mosaicker.finish(prepared, time.perf_counter() - t0)
    for reject in summary.rejected:  # the engine counts positions in the shard
        reject["index"] = taken[reject["index"]]
    if job.output_format in ("alpaca", "sharegpt"):
        assembly.columns.add("system")
    out_rows = list(assembly.rows(samples, prepared.grouper.records, prepared.admitted))
    name = shard_name(shard, shard_format)
    _write_shard(output_dir, name, out_rows, job.output_format, assembly.columns)
    result = summary.to_dict()
    result["shard"], result["file"], result["written"] = shard, name, dict(assembly.written)
    return result


def _write_shard(
    output_dir: str, name: str, rows: list[dict[str, Any]], fmt: str, columns: set[str]
) -> None:
    """Write with the one row writer: in place on a local disk, else staged and copied."""
    if "://" not in output_dir:
        write_rows(Path(output_dir) / name, rows, fmt, columns)  # atomic: temporary, renamed
        return
    import pyarrow.fs as pafs

    fs, base = filesystem(output_dir)
    with tempfile.TemporaryDirectory(prefix="mosaic-it-shard-") as tmp:
        write_rows(Path(tmp) / name, rows, fmt, columns)
        partial = f"{base}/.{name}.partial"
        pafs.copy_files(os.path.join(tmp, name), partial, destination_filesystem=fs)
        fs.move(partial, f"{base}/{name}")
