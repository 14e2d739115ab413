"""Reading records and writing samples: the file types live here, at the edge.

Inputs: a JSON list, JSONL (one object per line), Parquet, a directory written by
``datasets.save_to_disk``, or a hub dataset name (``owner/name``, online). The dataset format
(Alpaca, ShareGPT, messages, prompt-completion) is detected per file from its first record, or
given; :mod:`.formats` turns each record into a :class:`Record`. Outputs: JSON or JSONL by
extension, Parquet (``.parquet``), or a ``datasets`` directory (no extension, or a trailing
``/``). Outputs are written to a temporary file beside the target and renamed into place, so a
reader never sees a partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

import orjson

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
from mosaic_it.io.hub import hub_unreachable
from mosaic_it.io.outputs import (
    PathError,
    check_readable_input,
    file_mode_for,
    mark_dir,
    os_error_reason,
)
from mosaic_it.records import Record

EXAMPLE = "builtin:example"  # an INPUT that names the bundled example records


def example_path() -> Path:
    """The bundled example: 120 real Alpaca records, as JSONL."""
    return Path(str(resources.files("mosaic_it") / "data" / "example.jsonl"))


class InputError(ValueError):
    """Bad input; the message names the file, the line or record, and the field."""


@dataclass
class InvalidRecord:
    index: int
    where: str
    error: str
    reason: str = "invalid"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "detail": f"{self.where}: {self.error}"}


JSONL_SUFFIXES = (".jsonl", ".ndjson")


def is_jsonl(path: str | Path) -> bool:
    return str(path).lower().endswith(JSONL_SUFFIXES)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def record_from_alpaca(obj: Any, index: int) -> Record:
    """Validate one Alpaca object; raises ValueError naming the field (LeftOut: multi-turn)."""
    parsed = parse_alpaca(obj, index)
    if isinstance(parsed, Conversation):
        raise LeftOut("field 'history': a multi-turn record is left out of the mosaic")
    return parsed


HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TABLE_SUFFIXES = (".parquet", ".pq")
ROW_BATCH = 1024  # rows read from Parquet or a dataset at a time


def input_kind(path: str | Path) -> str:
    """How an input is read: json, jsonl, parquet, datasets (a save_to_disk directory) or hub."""
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


class UnreadableRecord(ValueError):
    """A line or record that is not a JSON value of valid Unicode text (skipped under
    ``on_error="skip"``, counted and listed like any invalid record)."""


BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark, written by some Windows tools


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at column {exc.start + 1})"
    return str(exc)


def _iter_json(path: Path, lenient: bool = False) -> Iterator[tuple[int, str, Any]]:
    """Records of a JSON list or JSONL file. ``lenient``: a JSONL line that cannot be read is
    yielded as an :class:`UnreadableRecord` (for the caller to skip) instead of stopping."""
    check_readable_input(path)
    try:
        handle = path.open("rb", buffering=1 << 20)  # bytes: orjson reads them as they are
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        if handle.peek(3)[:3] == BOM:
            handle.read(3)
        if is_jsonl(path):
            index = 0
            name = str(path)
            for lineno, line in enumerate(handle, start=1):
                if line.isspace() or not line:
                    continue
                where = f"{name}:{lineno} (record {index})"
                try:
                    obj, odd = _decode(line)
                    if odd:
                        _check_text(obj)
                except (ValueError, UnicodeDecodeError) as exc:
                    if not lenient:
                        raise InputError(f"{path}:{lineno}: {_json_error(exc)}") from None
                    obj = UnreadableRecord(_json_error(exc))
                yield index, where, obj
                index += 1
            return
        try:
            data, odd = _decode(handle.read())
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}:{exc.lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
                + (" (is this JSONL? name it .jsonl)" if exc.msg == "Extra data" else "")
            ) from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of records, got {_type_name(data)}")
    for index, obj in enumerate(data):
        where = f"{path}: record {index}"
        if odd:
            try:
                _check_text(obj)
            except UnreadableRecord as exc:
                if not lenient:
                    raise InputError(f"{where}: {exc}") from None
                obj = exc
        yield index, where, obj


MAX_DEPTH_NOTE = "nested too deeply (more levels of lists/objects than a JSON reader can take)"


def _decode(data: bytes | str) -> tuple[Any, bool]:
    """The value, and whether orjson refused it (then the json module read it: NaN, integers
    past 64 bits, lone surrogates, which :func:`_check_text` finds)."""
    try:
        return orjson.loads(data), False
    except orjson.JSONDecodeError:
        pass
    except RecursionError:
        raise ValueError(MAX_DEPTH_NOTE) from None
    try:
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data), True
    except RecursionError:
        raise ValueError(MAX_DEPTH_NOTE) from None


def _check_text(obj: Any, where: str = "") -> None:
    """Refuse text that cannot be written as UTF-8 (a lone surrogate such as \\ud800)."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UnreadableRecord(
                f"{'field ' + repr(where) + ': ' if where else ''}text holds a lone surrogate "
                f"({obj[exc.start]!r} at character {exc.start}), which is not valid Unicode"
            ) from None
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _check_text(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            _check_text(value, f"{where}[{i}]")


def loads(data: bytes | str) -> Any:
    """``json.loads`` of UTF-8 bytes or text, through orjson where it can (several times
    faster); what orjson refuses (NaN, integers past 64 bits, lone surrogates) or finds
    invalid goes to the json module, whose error messages name the line and column."""
    return _decode(data)[0]


def _need(module: str, what: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise InputError(
            f"{what} needs {module.split('.')[0]}: pip install 'mosaic-it[hf]'"
        ) from None


def _iter_parquet(path: Path) -> Iterator[tuple[int, str, Any]]:
    pq = _need("pyarrow.parquet", "reading Parquet")
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


def _iter_dataset(dataset: Any, where: str) -> Iterator[tuple[int, str, Any]]:
    index = 0
    for batch in dataset.iter(batch_size=ROW_BATCH):
        keys = list(batch)
        for values in zip(*batch.values()):
            yield index, f"{where}: record {index}", dict(zip(keys, values))
            index += 1


def load_dataset_source(path: str | Path, split: str | None = None) -> Any:
    """A ``datasets.Dataset`` from a save_to_disk directory or a hub name (one split)."""
    datasets = _need("datasets", "reading a dataset")
    if input_kind(path) == "hub":
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


def iter_raw(
    path: str | Path, split: str | None = None, *, lenient: bool = False
) -> Iterator[tuple[int, str, Any]]:
    """Yield (index, location, object) for every record of the input (see :func:`input_kind`);
    ``lenient``: an unreadable JSONL line or record comes as an :class:`UnreadableRecord`."""
    kind = input_kind(path)
    if kind in ("json", "jsonl"):
        yield from _iter_json(Path(path), lenient)
    elif kind == "parquet":
        yield from _iter_parquet(Path(path))
    else:
        yield from _iter_dataset(load_dataset_source(path, split), str(path))


def _formats_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and None in obj.values():
        obj = {k: v for k, v in obj.items() if v is not None}  # table rows hold every column
    return detect_format(obj)


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
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if input_format is not None:
        check_format(input_format)
    fmt = input_format
    origin = "given with --input-format"
    for index, where, obj in items:
        try:
            if isinstance(obj, UnreadableRecord):
                raise obj
            found = _formats_of(obj)
            if fmt is None:
                if found is None:
                    raise ValueError(
                        "cannot tell the format from the fields (expected 'instruction' and "
                        "'output', 'conversations', 'messages', or 'prompt' and 'completion'); "
                        "pass --input-format " + "|".join(FORMATS)
                    )
                fmt, origin = found, f"detected from record {index}"
                if columns_checked_in is not None:
                    missing = [c for c in REQUIRED_FIELDS[fmt] if c not in obj]
                    if missing:
                        raise InputError(
                            f"{columns_checked_in}: no column "
                            f"{', '.join(repr(c) for c in missing)} for the {fmt} format "
                            f"(columns: {', '.join(obj)})"
                        )
            elif input_format is None and found is not None and found != fmt:
                raise ValueError(
                    f"a {found} record in a {fmt} file (format {origin}); a file holds one "
                    "format: split it, or pass --input-format to read every record as one"
                )
            parsed = parse(obj, fmt, index)
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


# the same bytes as orjson writes, for what orjson cannot (integers past 64 bits)
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps_bytes(obj: Any) -> bytes:
    """One JSON line in UTF-8: compact (no spaces), characters written as they are.

    orjson writes it, an order of magnitude faster than the json module; what it refuses is
    written by the json module in the same form (tests check both give the same bytes).
    """
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is one
        return _COMPACT.encode(obj).encode("utf-8")


def dumps(obj: Any) -> str:
    """:func:`dumps_bytes` as text."""
    return dumps_bytes(obj).decode("utf-8")


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[IO[str]]:
    """A text file that appears at ``path`` only when the block finishes without error."""
    path = Path(path)
    with _atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_records(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write dicts as JSONL or as a JSON list (by extension), atomically; returns the count."""
    n = 0
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


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_writer(path) as out:
        json.dump(obj, out, ensure_ascii=False, indent=2)
        out.write("\n")


# ---------------------------------------------------------------------- outputs

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
        raise ValueError(
            f"{path}: unknown output type; name it .json, .jsonl or .parquet, or give a directory "
            "(no extension) for a datasets save_to_disk directory"
        )
    return kind


def table_schema(fmt: str, columns: Iterable[str] = ()) -> Any:
    """The Arrow schema of rows of format ``fmt``; ``mosaic`` is a JSON string column."""
    pa = _need("pyarrow", "writing Parquet or a dataset")
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


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_rows(
    path: str | Path, rows: Iterable[dict[str, Any]], fmt: str, columns: Iterable[str] = ()
) -> int:
    """Write rows of format ``fmt`` to ``path`` as its :func:`output_kind`; returns the count.

    JSON and JSONL keep ``mosaic`` as an object; Parquet and datasets directories hold it as
    a JSON string column (a struct column would need one schema for every rule's parameters).
    """
    kind = output_kind(path)
    if kind in ("json", "jsonl"):
        return write_records(path, rows)
    pa = _need("pyarrow", "writing Parquet or a dataset")
    schema = table_schema(fmt, columns)
    if kind == "datasets":
        dataset = rows_dataset(rows, fmt, columns)
        datasets = _need("datasets", "writing a datasets directory")
        bars = not datasets.utils.are_progress_bars_disabled()
        datasets.disable_progress_bars()
        try:
            _save_dataset_dir(dataset, Path(str(path).rstrip("/" + os.sep)))
        finally:
            if bars:
                datasets.enable_progress_bars()
        return dataset.num_rows
    if kind == "parquet":
        pq = _need("pyarrow.parquet", "writing Parquet")
        n = 0
        with _atomic_path(Path(path)) as tmp:
            with pq.ParquetWriter(tmp, schema) as writer:
                for batch in batches(_table_rows(rows, fmt), ROW_BATCH * 8):
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    n += len(batch)
                if n == 0:
                    writer.write_table(schema.empty_table())
        return n
    raise AssertionError(kind)


def rows_dataset(rows: Iterable[dict[str, Any]], fmt: str, columns: Iterable[str] = ()) -> Any:
    """Rows of format ``fmt`` as an in-memory ``datasets.Dataset`` (``mosaic`` as JSON text)."""
    pa = _need("pyarrow", "building a dataset")
    datasets = _need("datasets", "building a dataset")
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


@contextmanager
def _atomic_path(path: Path) -> Iterator[str]:
    """A temporary path beside ``path`` renamed onto it when the block succeeds.

    The file gets the mode of the file it replaces, or the one the umask gives a new file. A
    write that fails (disk full, read-only, no permission) leaves ``path`` as it was and raises
    a :class:`PathError` naming it.
    """
    parent = path.parent if str(path.parent) else Path(".")
    tmp = ""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=parent)
        os.fchmod(fd, file_mode_for(path))
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            with _quiet():
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp, str(parent), str(path)):
            kept = "the earlier file is unchanged" if path.exists() else "nothing was written"
            raise PathError(f"{path}: cannot write: {os_error_reason(exc)}; {kept}") from None
        raise


@contextmanager
def _quiet() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


def _save_dataset_dir(dataset: Any, path: Path) -> None:
    """save_to_disk into a fresh directory beside ``path``, then swap it into place."""
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=parent))
    old = None
    try:
        dataset.save_to_disk(str(tmp / "d"))
        mark_dir(tmp / "d")  # a later run may replace it: it is this tool's
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / "d")
        os.replace(tmp / "d", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def read_json_lines(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


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
            yield json.loads(line)

    def close(self) -> None:
        self._file.close()


def staging_path(output: str | Path) -> Path:
    """Where the samples of a run go before the output is assembled (fixed, for --resume)."""
    path = Path(str(output).rstrip("/" + os.sep))
    return path.with_name(f".{path.name}.samples.jsonl")


def config_path_for(output: str | Path) -> Path:
    """The effective config written beside an output: ``OUTPUT.config.yaml``."""
    return Path(str(output).rstrip("/" + os.sep) + ".config.yaml")
