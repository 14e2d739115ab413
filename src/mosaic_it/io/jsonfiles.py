"""JSON list and JSONL files (one object per line): reading records, writing rows.

Which of the two a path is, is told by its extension (``.jsonl``, ``.ndjson``: JSONL). Reading
yields ``(index, location, object)`` for every record; writing is atomic (see :mod:`.atomic`).
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from mosaic_it.errors import InputError
from mosaic_it.io.atomic import atomic_writer
from mosaic_it.io.errors import type_name
from mosaic_it.io.jsoncodec import (
    UnreadableRecord,
    check_text,
    decode,
    dumps,
    dumps_indented,
    error_text,
    loads,
)
from mosaic_it.io.outputs import check_readable_input, is_stream

JSONL_SUFFIXES = (".jsonl", ".ndjson")
STDIN_NAME = "<stdin>"  # how messages name standard input
BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark, written by some Windows tools


def is_jsonl(path: str | Path) -> bool:
    return str(path).lower().endswith(JSONL_SUFFIXES)


def iter_json_file(path: Path, lenient: bool = False) -> Iterator[tuple[int, str, Any]]:
    """Records of a JSON list or JSONL file. ``lenient``: a JSONL line that cannot be read is
    yielded as an :class:`UnreadableRecord` (for the caller to skip) instead of stopping."""
    check_readable_input(path)
    try:
        # bytes: orjson reads them as they are (a buffered reader: its stubs say BinaryIO)
        handle = cast(io.BufferedReader, path.open("rb", buffering=1 << 20))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        if handle.peek(3)[:3] == BOM:
            handle.read(3)
        if is_jsonl(path):
            yield from _jsonl_records(path, handle, lenient)
            return
        data, odd = _whole_document(path, handle.read())
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of records, got {type_name(data)}")
    for index, obj in enumerate(data):
        where = f"{path}: record {index}"
        if odd:
            try:
                check_text(obj)
            except UnreadableRecord as exc:
                if not lenient:
                    raise InputError(f"{where}: {exc}") from None
                obj = exc
        yield index, where, obj


def iter_jsonl_stdin(lenient: bool = False) -> Iterator[tuple[int, str, Any]]:
    """The records of standard input (the path ``-``), read as JSONL as they come."""
    stream = sys.stdin.buffer
    first = stream.peek(3)[:3] if isinstance(stream, io.BufferedReader) else b""
    if first == BOM:
        stream.read(3)
    yield from _jsonl_records(STDIN_NAME, stream, lenient)


def _jsonl_records(
    path: Path | str, lines: Iterable[bytes], lenient: bool
) -> Iterator[tuple[int, str, Any]]:
    index = 0
    name = str(path)
    for lineno, line in enumerate(lines, start=1):
        if line.isspace() or not line:
            continue
        where = f"{name}:{lineno} (record {index})"
        try:
            obj, odd = decode(line)
            if odd:
                check_text(obj)
        except (ValueError, UnicodeDecodeError) as exc:
            if not lenient:
                raise InputError(f"{path}:{lineno}: {error_text(exc)}") from None
            obj = UnreadableRecord(error_text(exc))
        yield index, where, obj
        index += 1


def _whole_document(path: Path, data: bytes) -> tuple[Any, bool]:
    try:
        return decode(data)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}:{exc.lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
            + (" (is this JSONL? name it .jsonl)" if exc.msg == "Extra data" else "")
        ) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None


def read_json_lines(path: str | Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file this tool wrote (no checks beyond the codec's)."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield loads(line)


def write_records(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write dicts as JSONL or as a JSON list (by extension), atomically; returns the count.
    ``-`` writes JSONL to standard output, each line as it comes."""
    n = 0
    if is_stream(path):
        try:
            for rec in records:
                sys.stdout.write(dumps(rec))
                sys.stdout.write("\n")
                n += 1
            sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped (`| head`): nothing more is wanted
            stdout_gone()
        return n
    with atomic_writer(path) as out:
        if is_jsonl(path):
            for rec in records:
                out.write(dumps(rec))
                out.write("\n")
                n += 1
        else:
            out.write("[")
            for rec in records:
                out.write(",\n  " if n else "\n  ")
                out.write(dumps(rec))
                n += 1
            out.write("\n]\n" if n else "]\n")
    return n


def stdout_gone() -> None:
    """Standard output's reader has gone: what is still buffered goes nowhere, so that the
    flush at exit raises no second error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def write_json(path: str | Path, obj: Any) -> None:
    """One JSON document for people to read (a summary, a report), atomically; ``-`` writes
    it to standard output."""
    if is_stream(path):
        sys.stdout.write(dumps_indented(obj) + "\n")
        sys.stdout.flush()
        return
    with atomic_writer(path) as out:
        out.write(dumps_indented(obj))
        out.write("\n")
