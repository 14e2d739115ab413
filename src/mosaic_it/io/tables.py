"""The Arrow file types: Parquet files and ``datasets`` directories (``save_to_disk``).

Reading yields ``(index, location, row)`` for every row; writing takes rows of one dataset
format, with its Arrow schema, and is atomic (see :mod:`.atomic`). ``mosaic`` is held as a
JSON string column (a struct column would need one schema for every rule's parameters).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mosaic_it.errors import InputError
from mosaic_it.hub import hub_unreachable
from mosaic_it.io.atomic import atomic_dir, atomic_path
from mosaic_it.io.errors import need
from mosaic_it.io.jsoncodec import dumps
from mosaic_it.io.outputs import check_readable_input

ROW_BATCH = 1024  # rows read from Parquet or a dataset at a time


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------- reading


def iter_parquet(path: Path) -> Iterator[tuple[int, str, Any]]:
    pq = need("pyarrow.parquet", "reading Parquet")
    check_readable_input(path)
    try:
        table = pq.ParquetFile(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a file that is not Parquet
        raise InputError(f"{path}: not a Parquet file ({exc})") from None
    index = 0
    for batch in table.iter_batches(batch_size=ROW_BATCH):
        for row in batch.to_pylist():
            yield index, f"{path}: record {index}", row
            index += 1


def iter_dataset(dataset: Any, where: str) -> Iterator[tuple[int, str, Any]]:
    index = 0
    for batch in dataset.iter(batch_size=ROW_BATCH):
        keys = list(batch)
        for values in zip(*batch.values()):
            yield index, f"{where}: record {index}", dict(zip(keys, values))
            index += 1


def load_dataset_source(path: str | Path, split: str | None = None, hub: bool = False) -> Any:
    """A ``datasets.Dataset`` from a save_to_disk directory or (``hub``) a hub name (one
    split)."""
    datasets = need("datasets", "reading a dataset")
    if hub:
        offline = hub_unreachable()
        if offline:
            raise InputError(f"{path}: not a local path; as a hub dataset name: {offline}")
        try:
            return datasets.load_dataset(str(path), split=split or "train")
        except Exception as exc:  # noqa: BLE001 - offline, unknown name, unknown split...
            raise InputError(f"{path}: cannot load from the hub: {exc}") from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise InputError(
            f"{path}: a directory, but not one written by datasets' save_to_disk"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        choice = split or (
            "train" if "train" in loaded else splits[0] if len(splits) == 1 else None
        )
        if choice not in loaded:
            raise InputError(f"{path}: choose a split with --split: {', '.join(splits)}")
        return loaded[choice]
    if split:
        raise InputError(f"{path}: a single dataset with no splits; leave out --split")
    return loaded


# ---------------------------------------------------------------------- writing


def table_schema(fmt: str, columns: Iterable[str] = ()) -> Any:
    """The Arrow schema of rows of format ``fmt``; ``mosaic`` is a JSON string column."""
    pa = need("pyarrow", "writing Parquet or a dataset")
    s = pa.string()
    message = pa.list_(pa.struct([("role", s), ("content", s)]))
    if fmt == "alpaca":
        fields = [("instruction", s), ("input", s), ("output", s), ("system", s)]
        if "history" in set(columns):
            fields.append(("history", pa.list_(pa.list_(s))))
    elif fmt == "sharegpt":
        fields = [
            ("conversations", pa.list_(pa.struct([("from", s), ("value", s)]))),
            ("system", s),
        ]
    elif fmt == "messages":
        fields = [("messages", message)]
    elif fmt == "messages-parts":
        part = pa.struct([("type", s), ("value", s)])
        parts = pa.struct([("role", s), ("content", pa.list_(part)), ("loss_weight", pa.float64())])
        fields = [("messages", pa.list_(parts))]
    else:
        fields = [("prompt", message), ("completion", message)]
    return pa.schema([*fields, ("mosaic", s)])


def _table_rows(rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[dict[str, Any]]:
    for row in rows:
        row = dict(row)
        if fmt in ("alpaca", "sharegpt"):
            row.setdefault("system", "")
        mosaic = row.get("mosaic")
        row["mosaic"] = None if mosaic is None else dumps(mosaic)
        yield row


def write_parquet(
    path: str | Path, rows: Iterable[dict[str, Any]], fmt: str, columns: Iterable[str] = ()
) -> int:
    """Rows of format ``fmt`` as a Parquet file; returns the count."""
    pa = need("pyarrow", "writing Parquet or a dataset")
    pq = need("pyarrow.parquet", "writing Parquet")
    schema = table_schema(fmt, columns)
    n = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for batch in batches(_table_rows(rows, fmt), ROW_BATCH * 8):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
        if n == 0:
            writer.write_table(schema.empty_table())
    return n


def rows_dataset(rows: Iterable[dict[str, Any]], fmt: str, columns: Iterable[str] = ()) -> Any:
    """Rows of format ``fmt`` as an in-memory ``datasets.Dataset`` (``mosaic`` as JSON text)."""
    pa = need("pyarrow", "building a dataset")
    datasets = need("datasets", "building a dataset")
    schema = table_schema(fmt, columns)
    tables = [
        pa.Table.from_pylist(b, schema=schema)
        for b in batches(_table_rows(rows, fmt), ROW_BATCH * 8)
    ]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    digest = hashlib.sha256()
    for batch in table.to_batches():  # a fingerprint from the content keeps reruns byte-identical
        for column in batch.columns:
            for buffer in column.buffers():
                if buffer is not None:
                    digest.update(buffer)
    return datasets.Dataset(
        datasets.table.InMemoryTable(table), fingerprint=digest.hexdigest()[:16]
    )


def write_dataset_dir(
    path: Path, rows: Iterable[dict[str, Any]], fmt: str, columns: Iterable[str] = ()
) -> int:
    """Rows of format ``fmt`` as a ``save_to_disk`` directory; returns the count."""
    dataset = rows_dataset(rows, fmt, columns)
    datasets = need("datasets", "writing a datasets directory")
    bars = not datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        with atomic_dir(path) as tmp:
            dataset.save_to_disk(str(tmp))
    finally:
        if bars:
            datasets.enable_progress_bars()
    return dataset.num_rows
