"""Reading records and writing samples: the file formats live here, at the edge.

Alpaca records come from a JSON list or from JSONL (one object per line); samples go to JSON or
JSONL by the output's extension. Outputs are written to a temporary file beside the target and
renamed into place, so a reader never sees a partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .records import Record


class InputError(ValueError):
    """Bad input; the message names the file, the line or record, and the field."""


class LeftOut(ValueError):
    """A valid record that is not mosaicked (a multi-turn record); counted, never an error."""


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
    """Validate one Alpaca object; raises ValueError naming the field."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object with 'instruction' and 'output', got {_type_name(obj)}")
    for name in ("instruction", "output"):
        if name not in obj:
            raise ValueError(f"field '{name}': missing")
        if not isinstance(obj[name], str):
            raise ValueError(f"field '{name}': expected a string, got {_type_name(obj[name])}")
    if not obj["instruction"].strip():
        raise ValueError("field 'instruction': empty")
    if not obj["output"].strip():
        raise ValueError("field 'output': empty")
    text_input = obj.get("input")
    if text_input is None:
        text_input = ""
    elif not isinstance(text_input, str):
        raise ValueError(f"field 'input': expected a string, got {_type_name(text_input)}")
    system = obj.get("system")
    if system is None:
        system = ""
    elif not isinstance(system, str):
        raise ValueError(f"field 'system': expected a string, got {_type_name(system)}")
    history = obj.get("history")
    if history:
        raise LeftOut("field 'history': a multi-turn record is left out of the mosaic")
    rid = obj.get("id", index)
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"field 'id': expected a string or an integer, got {_type_name(rid)}")
    return Record(
        id=rid, instruction=obj["instruction"], output=obj["output"], input=text_input, system=system
    )


def iter_raw(path: str | Path) -> Iterator[tuple[int, str, Any]]:
    """Yield (index, location, object) for every record of a JSON list or a JSONL file."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        if is_jsonl(path):
            index = 0
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{path}:{lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
                    ) from None
                yield index, f"{path}:{lineno} (record {index})", obj
                index += 1
            return
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}:{exc.lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
                + (" (is this JSONL? name it .jsonl)" if exc.msg == "Extra data" else "")
            ) from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of records, got {_type_name(data)}")
    for index, obj in enumerate(data):
        yield index, f"{path}: record {index}", obj


def read_records(
    path: str | Path, on_error: str = "raise", invalid: list[InvalidRecord] | None = None
) -> Iterator[Record]:
    """Alpaca records of a file. With ``on_error="skip"`` bad records go to ``invalid``."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    for index, where, obj in iter_raw(path):
        try:
            yield record_from_alpaca(obj, index)
        except LeftOut as exc:
            if invalid is not None:
                invalid.append(InvalidRecord(index, where, str(exc), reason="multi-turn"))
        except ValueError as exc:
            if on_error == "raise":
                raise InputError(f"{where}: {exc}") from None
            if invalid is not None:
                invalid.append(InvalidRecord(index, where, str(exc)))


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[IO[str]]:
    """A text file that appears at ``path`` only when the block finishes without error."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
