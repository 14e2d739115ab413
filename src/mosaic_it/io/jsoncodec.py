"""The one JSON codec of the project: how every JSON value is read and written.

Reading goes through orjson where it can (several times faster); what orjson refuses (NaN,
integers past 64 bits, lone surrogates) goes to the json module, whose error messages name the
line and column. Writing gives one byte form whichever encoder writes it: compact (no spaces),
characters as they are, UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

MAX_DEPTH_NOTE = "nested too deeply (more levels of lists/objects than a JSON reader can take)"

# the same bytes as orjson writes, for what orjson cannot (integers past 64 bits)
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class UnreadableRecord(ValueError):
    """A line or record that is not a JSON value of valid Unicode text (skipped under
    ``on_error="skip"``, counted and listed like any invalid record)."""


def decode(data: bytes | str) -> tuple[Any, bool]:
    """The value, and whether orjson refused it (then the json module read it: NaN, integers
    past 64 bits, lone surrogates, which :func:`check_text` finds)."""
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


def loads(data: bytes | str) -> Any:
    """``json.loads`` of UTF-8 bytes or text, through orjson where it can (see the module)."""
    return decode(data)[0]


def check_text(obj: Any, where: str = "") -> None:
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
            check_text(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            check_text(value, f"{where}[{i}]")


def error_text(exc: ValueError) -> str:
    """What was wrong with a JSON text, in words (the column where it went wrong)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at column {exc.start + 1})"
    return str(exc)


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


def dumps_indented(obj: Any) -> str:
    """A JSON document for people to read: indented by two spaces, characters as they are."""
    return json.dumps(obj, ensure_ascii=False, indent=2)
