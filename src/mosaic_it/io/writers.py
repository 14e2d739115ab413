"""Writing rows: which writer writes an output, and where a run keeps rows meanwhile.

Outputs: JSON or JSONL by extension, Parquet (``.parquet``), or a ``datasets`` directory (no
extension, or a trailing ``/``); the writers of each file type are in :mod:`.jsonfiles` and
:mod:`.tables`. Every one writes beside the target and renames into place (:mod:`.atomic`), so
a reader never sees a partial file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mosaic_it.errors import OptionError
from mosaic_it.io.errors import need
from mosaic_it.io.jsoncodec import dumps, loads
from mosaic_it.io.jsonfiles import write_records
from mosaic_it.io.tables import write_dataset_dir, write_parquet

OUTPUT_KINDS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def output_kind(path: str | Path) -> str:
    """json, jsonl, parquet, or datasets (a save_to_disk directory: no extension, or a '/')."""
    text = str(path)
    if text.endswith(("/", os.sep)) or not Path(text).suffix:
        return "datasets"
    kind = OUTPUT_KINDS.get(Path(text).suffix.lower())
    if kind is None:
        raise OptionError(
            f"{path}: unknown output type; name it .json, .jsonl or .parquet, or give a directory "
            "(no extension) for a datasets save_to_disk directory"
        )
    return kind


def write_rows(
    path: str | Path, rows: Iterable[dict[str, Any]], fmt: str, columns: Iterable[str] = ()
) -> int:
    """Write rows of format ``fmt`` to ``path`` as its :func:`output_kind`; returns the count.

    JSON and JSONL keep ``mosaic`` as an object; Parquet and datasets directories hold it as
    a JSON string column (see :mod:`.tables`).
    """
    kind = output_kind(path)
    if kind in ("json", "jsonl"):
        return write_records(path, rows)
    need("pyarrow", "writing Parquet or a dataset")
    if kind == "datasets":
        return write_dataset_dir(Path(str(path).rstrip("/" + os.sep)), rows, fmt, columns)
    return write_parquet(path, rows, fmt, columns)


class RowSpool:
    """Rows kept aside in a temporary file while a run goes on (passed-through records)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n")
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self._file.write(dumps(row) + "\n")
        self.count += 1

    def rows(self) -> Iterator[dict[str, Any]]:
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield loads(line)

    def close(self) -> None:
        self._file.close()


def staging_path(output: str | Path) -> Path:
    """Where the samples of a run go before the output is assembled (fixed, for --resume)."""
    path = Path(str(output).rstrip("/" + os.sep))
    return path.with_name(f".{path.name}.samples.jsonl")


def config_path_for(output: str | Path) -> Path:
    """The effective config written beside an output: ``OUTPUT.config.yaml``."""
    return Path(str(output).rstrip("/" + os.sep) + ".config.yaml")
