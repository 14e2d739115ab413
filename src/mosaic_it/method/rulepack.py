"""Rule packs: the labels, tags and phrasings of the meta-instructions, kept as data, loaded
and validated (the pack as a value is :mod:`mosaic_it.method.pack`).

The default pack ships as ``mosaic_it/data/rules.json``: the layout pools (its ``format``
section), then one section per strategy, which that strategy checks (see
:mod:`mosaic_it.method.strategies.base`). A user pack either replaces it or,
with ``"extends": "default"``, adds to it: lists are appended (duplicates dropped), numbers and
strings replace the default's. Every pack is validated before use, and an error names the file
and the JSON path of the offending value.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mosaic_it.io.jsoncodec import loads
from mosaic_it.method.pack import (
    PackChecker,
    Pool,
    RulePack,
    RulePackError,
    filter_pools,
    layout_pools,
)
from mosaic_it.method.packschema import first_error, line_of, pack_schema
from mosaic_it.method.packschema import where as place_name
from mosaic_it.method.strategies.base import find_strategy, registered


def default_rules_path() -> Path:
    return Path(str(resources.files("mosaic_it") / "data" / "rules.json"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulePackError(f"{path}: cannot read rule pack: {exc.strerror or exc}") from None
    try:
        data = loads(text)
    except json.JSONDecodeError as exc:
        raise RulePackError(
            f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    except ValueError as exc:  # nested too deeply
        raise RulePackError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise RulePackError(f"{path}: a rule pack is a JSON object, got {type(data).__name__}")
    return data


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(extra, list):
        return base + [item for item in extra if item not in base]
    return extra


def load_rule_pack(path: str | Path | None = None) -> RulePack:
    """Load and validate a rule pack; ``None`` gives the default one.

    Packs are cached per path and modification: a pack edited on disk is read again."""
    try:
        st = os.stat(path if path is not None else default_rules_path())
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = None  # the loader says what is wrong with the path
    return _load_rule_pack(path, stamp)


@lru_cache(maxsize=8)
def _load_rule_pack(path: str | Path | None, stamp: object) -> RulePack:
    default_path = default_rules_path()
    target = Path(path) if path is not None else default_path
    data = _read_json(target)
    _check_schema(data, target)
    if data.get("extends") is not None:
        if data["extends"] != "default":
            raise RulePackError(f'{target}: extends: only "default" can be extended')
        data = _merge(_read_json(default_path), {k: v for k, v in data.items() if k != "extends"})
    elif target != default_path:
        _take_newer_keys(data, _read_json(default_path))
    _validate(data, str(target))
    filter_pools(data, tuple(data["avoid_strings"]), str(target), every_pool)
    return RulePack(data["name"], data["version"], data, str(target), pools=every_pool)


def every_pool(data: dict[str, Any]) -> list[Pool]:
    """Every pool of texts of a pack's data: the layout's, then each registered strategy's."""
    pools = layout_pools(data)
    for name in registered():
        strategy = find_strategy(name)
        if strategy is not None and strategy.pack_pools is not None:
            pools += strategy.pack_pools(data[name])
    return pools


# keys the bundled pack gained after packs were first written in full (version 3): a full pack
# that leaves one out takes the bundled pack's
NEWER_KEYS = (("meta_like",), ("format", "tag_avoid_strings"))


def _take_newer_keys(data: dict[str, Any], default: dict[str, Any]) -> None:
    for path in NEWER_KEYS:
        holder: Any = data
        bundled: Any = default
        for key in path[:-1]:
            holder, bundled = holder.get(key), bundled[key]
            if not isinstance(holder, dict):
                break
        else:
            holder.setdefault(path[-1], bundled[path[-1]])


def _check_schema(data: dict[str, Any], path: Path) -> None:
    """The pack as written against its schema (``data/schemas/rules.schema.json``): an unknown
    key is an error naming it, its line and the nearest known key. A pack that extends the
    default may leave keys out."""
    found = first_error(
        data,
        pack_schema(),
        partial=data.get("extends") is not None,
        allowed=tuple(n for n in registered() if n not in pack_schema()["properties"]),
    )
    if found is None:
        return
    place, why = found
    try:
        line = line_of(path.read_text(encoding="utf-8"), place)
    except OSError:
        line = None
    at = f"line {line}: " if line else ""
    raise RulePackError(f"{path}: {at}{place_name(place)}: {why}")


# ---------------------------------------------------------------------------- validation


def _validate(data: dict[str, Any], source: str) -> None:
    c = PackChecker(source)
    name, version = c.get(data, "name", ""), c.get(data, "version", "")
    if not isinstance(name, str) or not name:
        c.fail("name", "expected a non-empty string")
    if isinstance(version, bool) or not isinstance(version, int):
        c.fail("version", "expected an integer")

    margins = c.get(data, "margins", "")
    for key in ("words", "characters", "relative"):
        value = c.get(margins, key, "margins")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            c.fail(f"margins.{key}", f"expected a number >= 0, got {value!r}")
    if margins["relative"] >= 1:
        c.fail("margins.relative", "expected a fraction below 1")
    c.texts(c.get(data, "input_counts", ""), "input_counts", set())
    avoid = c.get(data, "avoid_strings", "")
    if not isinstance(avoid, list) or not all(isinstance(a, str) and a for a in avoid):
        c.fail("avoid_strings", "expected a list of non-empty strings")
    for language, patterns in c.get(data, "meta_like", "").items():
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                c.fail(f"meta_like.{language}[{i}]", f"not a regular expression: {exc}")

    layout = c.get(data, "format", "")  # the layout pools
    placement = c.get(layout, "meta_placement", "format")
    if placement not in ("independent", "joined"):
        c.fail("format.meta_placement", f'expected "independent" or "joined", got {placement!r}')
    c.texts(c.get(layout, "labels", "format"), "format.labels", {"n"})
    for i, label in enumerate(layout["labels"]):
        if label != label.strip():
            c.fail(f"format.labels[{i}]", "must not start or end with whitespace")
    punct = c.get(layout, "label_punctuation", "format")
    c.texts(punct, "format.label_punctuation", set(), allow_empty=True)
    for key in (
        "unnumbered_probability",
        "label_newline_probability",
        "tag_probability",
        "tag_lowercase_probability",
        "generic_probability",
        "meta_after_probability",
    ):
        c.probability(layout, key, "format")
    c.pairs(c.get(layout, "tag_brackets", "format"), "format.tag_brackets", allow_empty=False)
    c.pairs(c.get(layout, "tag_words", "format"), "format.tag_words", allow_empty=False)
    for i, (begin, end) in enumerate(layout["tag_words"]):
        if begin.lower() == end.lower():
            c.fail(f"format.tag_words[{i}]", "begin and end words must differ")
    c.texts(c.get(layout, "tag_phrasings", "format"), "format.tag_phrasings", {"begin", "end"})
    c.texts(c.get(layout, "generic_phrasings", "format"), "format.generic_phrasings", set())
    for key in ("instruction_separators", "meta_separators"):
        seps = c.get(layout, key, "format")
        c.texts(seps, f"format.{key}", set(), one_line=False)
        for i, sep in enumerate(seps):
            if sep.strip("\n") or not sep:
                c.fail(f"format.{key}[{i}]", "a separator is one or more newlines")
    if not any(sep.count("\n") >= 2 for sep in layout["meta_separators"]):
        # one newline would read the meta-instruction as a line of the last input
        c.fail("format.meta_separators", "none holds a blank line (two newlines)")
    sep = c.get(layout, "response_separator", "format")
    if not isinstance(sep, str) or not sep or sep.strip("\n"):
        c.fail("format.response_separator", "a separator is one or more newlines")

    for name in registered():  # each strategy checks its own section
        strategy = find_strategy(name)
        if strategy is not None and strategy.check_pack is not None:
            strategy.check_pack(c, c.get(data, name, ""))
