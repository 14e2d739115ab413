"""Reading an input into records: which reader reads it, and what its records are.

Inputs: a JSON list, JSONL (one object per line), Parquet, a directory written by
``datasets.save_to_disk``, or a hub dataset name (``owner/name``, online); the readers of each
file type are in :mod:`.jsonfiles` and :mod:`.tables`. The dataset format (Alpaca, ShareGPT,
messages, prompt-completion) is detected per source from its first record, or given;
:mod:`.formats` turns each record into a :class:`Record`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mosaic_it.errors import InputError, OptionError
from mosaic_it.io.formats import (
    FORMATS,
    REQUIRED_FIELDS,
    Conversation,
    LeftOut,
    check_format,
    detect_format,
    parse,
    parse_alpaca,
)
from mosaic_it.io.jsoncodec import UnreadableRecord
from mosaic_it.io.jsonfiles import is_jsonl, iter_json_file, iter_jsonl_stdin
from mosaic_it.io.outputs import is_stream
from mosaic_it.io.tables import iter_dataset, iter_parquet, load_dataset_source
from mosaic_it.records import Record

EXAMPLE = "builtin:example"  # an INPUT that names the bundled example records
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TABLE_SUFFIXES = (".parquet", ".pq")


def example_path() -> Path:
    """The bundled example: 120 real Alpaca records, as JSONL."""
    return Path(str(resources.files("mosaic_it") / "data" / "example.jsonl"))


@dataclass
class InvalidRecord:
    index: int
    where: str
    error: str
    reason: str = "invalid"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "detail": f"{self.where}: {self.error}"}


def resolve_input(path: str | Path) -> str | Path:
    """An input as a path to read: ``builtin:example`` is the bundled example's file."""
    return example_path() if str(path) == EXAMPLE else path


def input_kind(path: str | Path) -> str:
    """How an input is read: json, jsonl, parquet, datasets (a save_to_disk directory) or hub."""
    path = resolve_input(path)
    p = Path(path)
    name = str(path).lower()
    if name.endswith(TABLE_SUFFIXES):
        return "parquet"
    if is_jsonl(name):
        return "jsonl"
    if p.is_dir():
        return "datasets"
    if not p.exists() and not name.endswith(".json") and HUB_NAME.match(str(path)):
        return "hub"
    return "json"


def iter_raw(
    path: str | Path, split: str | None = None, *, lenient: bool = False
) -> Iterator[tuple[int, str, Any]]:
    """Yield (index, location, object) for every record of the input (see :func:`input_kind`);
    ``lenient``: an unreadable JSONL line or record comes as an :class:`UnreadableRecord`.
    ``-`` is standard input, read as JSONL."""
    if is_stream(path):
        yield from iter_jsonl_stdin(lenient)
        return
    path = resolve_input(path)
    kind = input_kind(path)
    if kind in ("json", "jsonl"):
        yield from iter_json_file(Path(path), lenient)
    elif kind == "parquet":
        yield from iter_parquet(Path(path))
    else:
        yield from iter_dataset(load_dataset_source(path, split, hub=kind == "hub"), str(path))


def record_from_alpaca(obj: Any, index: int) -> Record:
    """Validate one Alpaca object; raises ValueError naming the field (LeftOut: multi-turn)."""
    parsed = parse_alpaca(obj, index)
    if isinstance(parsed, Conversation):
        raise LeftOut("field 'history': a multi-turn record is left out of the mosaic")
    return parsed


def read_records(
    path: str | Path,
    on_error: str = "raise",
    invalid: list[InvalidRecord] | None = None,
    *,
    input_format: str | None = None,
    split: str | None = None,
    on_conversation: Callable[[Conversation], None] | None = None,
) -> Iterator[Record]:
    """Single-pair records of an input, in any format (see :func:`records_from_raw`)."""
    tabular = input_kind(path) not in ("json", "jsonl")
    return records_from_raw(
        iter_raw(path, split, lenient=on_error == "skip"),
        on_error,
        invalid,
        input_format=input_format,
        on_conversation=on_conversation,
        columns_checked_in=str(path) if tabular else None,
    )


class _SourceFormat:
    """The dataset format of one source: given, or detected from its first record; a record
    in another format is an error."""

    def __init__(self, given: str | None, columns_checked_in: str | None) -> None:
        self.given = check_format(given) if given is not None else None
        self.name = given
        self.origin = "given with --input-format"
        self.columns_checked_in = columns_checked_in

    def of(self, obj: Any, index: int) -> str:
        shown = obj
        if isinstance(obj, dict) and None in obj.values():
            shown = {k: v for k, v in obj.items() if v is not None}  # table rows hold every column
        found = detect_format(shown)
        if self.name is None:
            if found is None:
                raise ValueError(
                    "cannot tell the format from the fields (expected 'instruction' and "
                    "'output', 'conversations', 'messages', or 'prompt' and 'completion'); "
                    "pass --input-format " + "|".join(FORMATS)
                )
            self.name, self.origin = found, f"detected from record {index}"
            self._check_columns(obj, found)
        elif self.given is None and found is not None and found != self.name:
            raise ValueError(
                f"a {found} record in a {self.name} file (format {self.origin}); a file holds "
                "one format: split it, or pass --input-format to read every record as one"
            )
        return self.name

    def _check_columns(self, row: dict[str, Any], fmt: str) -> None:
        """For a table, missing columns are an error for the whole source."""
        if self.columns_checked_in is None:
            return
        missing = [c for c in REQUIRED_FIELDS[fmt] if c not in row]
        if missing:
            raise InputError(
                f"{self.columns_checked_in}: no column "
                f"{', '.join(repr(c) for c in missing)} for the {fmt} format "
                f"(columns: {', '.join(row)})"
            )


def records_from_raw(
    items: Iterable[tuple[int, str, Any]],
    on_error: str = "raise",
    invalid: list[InvalidRecord] | None = None,
    *,
    input_format: str | None = None,
    on_conversation: Callable[[Conversation], None] | None = None,
    columns_checked_in: str | None = None,
) -> Iterator[Record]:
    """Single-pair records of raw ``(index, location, object)`` items of one source.

    The format is ``input_format`` or detected from the first record; a record in another
    format is an error. With ``on_error="skip"`` bad records go to ``invalid``. Multi-turn
    conversations are listed in ``invalid`` (reason ``multi-turn``) and handed to
    ``on_conversation`` when given (to pass them through). For a table
    (``columns_checked_in`` names it), missing columns are an error for the whole source.
    """
    if on_error not in ("raise", "skip"):
        raise OptionError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    source = _SourceFormat(input_format, columns_checked_in)
    for index, where, obj in items:
        try:
            if isinstance(obj, UnreadableRecord):
                raise obj
            parsed = parse(obj, source.of(obj, index), index)
        except InputError:
            raise
        except ValueError as exc:
            if on_error == "raise":
                raise InputError(f"{where}: {exc}") from None
            if invalid is not None:
                invalid.append(InvalidRecord(index, where, str(exc)))
            continue
        if isinstance(parsed, Conversation):
            if invalid is not None:
                invalid.append(
                    InvalidRecord(
                        index,
                        where,
                        f"{len(parsed.turns) // 2} turns: a multi-turn record is not mosaicked"
                        + (" (passed through)" if on_conversation else " (left out)"),
                        reason="multi-turn",
                    )
                )
            if on_conversation is not None:
                on_conversation(parsed)
            continue
        yield parsed
