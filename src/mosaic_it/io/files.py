"""Reading records and writing rows, by the names the rest of the package imports.

Each job has its own module: :mod:`.readers` (which reader reads an input, and its records),
:mod:`.writers` (which writer writes an output), :mod:`.jsonfiles` and :mod:`.tables` (the
readers and writers of each file type), :mod:`.jsoncodec` (the one JSON codec) and
:mod:`.atomic` (the one temporary-then-rename writer). This module names them together.
"""

from mosaic_it.io.atomic import atomic_path, atomic_writer
from mosaic_it.io.errors import InputError
from mosaic_it.io.jsoncodec import UnreadableRecord, dumps, dumps_bytes, loads
from mosaic_it.io.jsonfiles import is_jsonl, read_json_lines, write_json, write_records
from mosaic_it.io.readers import (
    EXAMPLE,
    InvalidRecord,
    example_path,
    input_kind,
    iter_raw,
    read_records,
    record_from_alpaca,
    records_from_raw,
)
from mosaic_it.io.tables import ROW_BATCH, batches, rows_dataset, table_schema
from mosaic_it.io.writers import (
    OUTPUT_KINDS,
    RowSpool,
    config_path_for,
    output_kind,
    staging_path,
    write_rows,
)

__all__ = [
    "EXAMPLE",
    "OUTPUT_KINDS",
    "ROW_BATCH",
    "InputError",
    "InvalidRecord",
    "RowSpool",
    "UnreadableRecord",
    "atomic_path",
    "atomic_writer",
    "batches",
    "config_path_for",
    "dumps",
    "dumps_bytes",
    "example_path",
    "input_kind",
    "is_jsonl",
    "iter_raw",
    "loads",
    "output_kind",
    "read_json_lines",
    "read_records",
    "record_from_alpaca",
    "records_from_raw",
    "rows_dataset",
    "staging_path",
    "table_schema",
    "write_json",
    "write_records",
    "write_rows",
]
