"""The rule pack's JSON Schema (``mosaic_it/data/schemas/rules.schema.json``) and a small
validator of the part of JSON Schema it uses.

Why not the ``jsonschema`` library: the error a user needs names the misspelt key, its place in
the file and the nearest known key, which takes walking the schema ourselves anyway; the subset
the schema uses (``type``, ``properties``, ``required``, ``additionalProperties``, ``items``,
``enum``, sizes and bounds, local ``$ref``) is about sixty lines, and the core stays free of a
dependency. The tests check the schema with ``jsonschema`` where it is installed.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

Path = list[str | int]  # a place in the pack: keys and list indices

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}
_NAMES = {"object": "an object", "array": "a list", "string": "a string", "number": "a number",
          "integer": "an integer", "boolean": "true or false"}  # fmt: skip


@lru_cache(maxsize=1)
def pack_schema() -> dict[str, Any]:
    """The rule pack schema shipped with the package."""
    text = (resources.files("mosaic_it") / "data" / "schemas" / "rules.schema.json").read_text(
        "utf-8"
    )
    return json.loads(text)


def where(path: Path) -> str:
    """``["margins", "words"]`` -> ``margins.words``; list indices in brackets."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(the pack)"


def line_of(text: str, path: Path) -> int | None:
    """The line of ``text`` (a pack's JSON) where the key at ``path`` is written, found key by
    key from the start (JSON parsers keep no positions); None when it cannot be found."""
    pos, line = 0, None
    for part in path:
        if isinstance(part, int):
            continue
        found = re.compile(re.escape(json.dumps(part, ensure_ascii=False)) + r"\s*:").search(
            text, pos
        )
        if found is None:
            return line
        pos, line = found.end(), text.count("\n", 0, found.start()) + 1
    return line


def first_error(
    value: Any,
    schema: dict[str, Any],
    *,
    partial: bool = False,
    allowed: tuple[str, ...] = (),
    path: Path | None = None,
    root: dict[str, Any] | None = None,
) -> tuple[Path, str] | None:
    """The first place where ``value`` breaks ``schema``, and why; None when it holds.
    ``partial``: required keys may be missing (a pack that extends another); ``allowed``: more
    keys the top-level object may hold (the sections of strategies registered beyond the
    built-in ones, which check their sections themselves)."""
    path = path or []
    root = root or schema
    ref = schema.get("$ref")
    if ref:
        schema = root["$defs"][ref.rsplit("/", 1)[1]]
    kind = schema.get("type")
    if kind and (
        not isinstance(value, _TYPES[kind]) or (isinstance(value, bool) and kind != "boolean")
    ):
        return path, f"expected {_NAMES[kind]}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return path, f"expected one of {', '.join(map(json.dumps, schema['enum']))}, got {value!r}"
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        return path, "empty string"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return path, f"expected a number >= {schema['minimum']}, got {value!r}"
        if "maximum" in schema and value > schema["maximum"]:
            return path, f"expected a number <= {schema['maximum']}, got {value!r}"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return path, f"expected a number below {schema['exclusiveMaximum']}, got {value!r}"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return path, "expected a non-empty list" if schema["minItems"] == 1 else (
                f"expected at least {schema['minItems']} entries"
            )
        if len(value) > schema.get("maxItems", len(value)):
            return path, f"expected at most {schema['maxItems']} entries"
        for i, item in enumerate(value):
            found = first_error(item, schema.get("items", {}), path=[*path, i], root=root)
            if found:
                return found
    if isinstance(value, dict):
        known = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in known:
                found = first_error(item, known[key], partial=partial, path=[*path, key], root=root)
            elif isinstance(extra, dict):
                found = first_error(item, extra, partial=partial, path=[*path, key], root=root)
            elif extra is False and key not in allowed:
                near = difflib.get_close_matches(key, [*known, *allowed], n=1, cutoff=0.5)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                found = [*path, key], f"unknown key {key!r}{hint}"
            else:
                found = None
            if found:
                return found
        if not partial:
            for key in schema.get("required", []):
                if key not in value:
                    return [*path, key], "missing"
    return None
