"""Rule packs: the labels, tags and phrasings of the meta-instructions, kept as data.

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
import string
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mosaic_it.errors import InputError
from mosaic_it.io.jsoncodec import dumps_bytes, loads
from mosaic_it.method.packschema import first_error, line_of, pack_schema
from mosaic_it.method.packschema import where as place_name
from mosaic_it.method.strategies import find_strategy, registered

# the rule names are their strategies' own; named here too for the callers of today
from mosaic_it.method.strategies.maskout import MASKOUT_RULES  # noqa: F401
from mosaic_it.method.strategies.permute import PERMUTE_RULES  # noqa: F401


class RulePackError(InputError):
    """A rule pack that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class RulePack:
    name: str
    version: int
    data: dict[str, Any]
    source: str
    # pools derived from the data (tag pairs, label styles), made once per pack
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def margins(self) -> dict[str, float]:
        """How far apart neighbouring keys of a sort (or the two sides of a cut) must be."""
        return self.data["margins"]

    @property
    def avoid(self) -> tuple[str, ...]:
        """Strings no label, tag or phrasing may contain (chat-control strings)."""
        return tuple(self.data["avoid_strings"])

    @property
    def avoided(self) -> StringSet:
        """:attr:`avoid` as a :class:`StringSet`, made once per pack."""
        found = self.derived.get("avoided")
        if found is None:
            found = self.derived["avoided"] = StringSet(self.avoid)
        return found

    def avoiding(self, strings: set[str] | frozenset[str]) -> RulePack:
        """This pack with ``strings`` avoided too (a tokenizer's special tokens, a template's
        control strings): every pool entry that contains one is left out. An error names a
        pool that would be left empty."""
        extra = sorted(s for s in strings if s and s not in self.avoid)
        if not extra:
            return self
        data = loads(dumps_bytes(self.data))  # a deep copy
        data["avoid_strings"] = list(self.avoid) + extra
        _filter_pools(data, tuple(data["avoid_strings"]), self.source)
        return replace(self, data=data, derived={})

    @property
    def layout(self) -> dict[str, Any]:
        """The layout pools: the pack's "format" section."""
        return self.data["format"]

    @property
    def permute(self) -> dict[str, Any]:
        return self.data["permute"]

    @property
    def maskout(self) -> dict[str, Any]:
        return self.data["maskout"]

    def section(self, strategy: str) -> dict[str, Any]:
        """A strategy's own section of the pack (its phrasings), named after it."""
        return self.data[strategy]


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
    _filter_pools(data, tuple(data["avoid_strings"]), str(target))
    return RulePack(data["name"], data["version"], data, str(target))


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


class StringSet:
    """Tells whether a text holds one of a set of strings.

    A tokenizer brings thousands of special tokens to avoid (Gemma 3 has 6,251), and the
    tags drawn from a pack are checked against all of them: a short text is looked up by its
    substrings of the lengths the set holds, so the cost grows with the text, not the set.
    """

    def __init__(self, strings: Iterable[str]) -> None:
        self.strings = frozenset(s for s in strings if s)
        self._shortest_first = sorted(self.strings, key=lambda s: (len(s), s))
        self._lengths = sorted({len(s) for s in self.strings})

    def found_in(self, text: str) -> str | None:
        """The first string of the set ``text`` holds (shortest first), or None."""
        n = len(text)
        if n * len(self._lengths) > len(self.strings):  # a long text: search for each string
            return next((s for s in self._shortest_first if s in text), None)
        for k in self._lengths:
            if k > n:
                break
            for i in range(n - k + 1):
                if text[i : i + k] in self.strings:
                    return text[i : i + k]
        return None


def _filter_pools(data: dict[str, Any], avoid: tuple[str, ...], source: str) -> None:
    """Leave out every label, phrasing and separator that contains an avoided string (tags are
    built from brackets and words, so whole tags are checked when they are drawn)."""
    layout = data["format"]
    pools: list[tuple[str, dict[str, Any], str]] = [
        ("format.labels", layout, "labels"),
        ("format.tag_phrasings", layout, "tag_phrasings"),
        ("format.generic_phrasings", layout, "generic_phrasings"),
        ("input_counts", data, "input_counts"),
    ]
    for name in registered():
        strategy = find_strategy(name)
        if strategy is not None and strategy.pack_pools is not None:
            pools += strategy.pack_pools(data[name])
    avoided = StringSet(avoid)
    for where, holder, key in pools:
        kept = [t for t in holder[key] if avoided.found_in(t) is None]
        if not kept:
            found = sorted({avoided.found_in(t) or "" for t in holder[key]})
            raise RulePackError(
                f"{source}: {where}: every entry contains a string that must be "
                f"avoided ({', '.join(found)})"
            )
        holder[key] = kept


# ---------------------------------------------------------------------------- validation


class PackChecker:
    """Checks of a rule pack's values; each failure names the file and the JSON path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, why: str) -> None:
        raise RulePackError(f"{self.source}: {where}: {why}")

    def get(self, obj: dict[str, Any], key: str, where: str) -> Any:
        if not isinstance(obj, dict):
            self.fail(where, "expected an object")
        if key not in obj:
            self.fail(f"{where}.{key}" if where else key, "missing")
        return obj[key]

    def probability(self, obj: dict[str, Any], key: str, where: str) -> None:
        value = self.get(obj, key, where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            self.fail(f"{where}.{key}", f"expected a probability in [0, 1], got {value!r}")

    def texts(
        self,
        value: Any,
        where: str,
        fields: set[str],
        *,
        allow_empty: bool = False,
        one_line: bool = True,
    ) -> None:
        """A non-empty list of distinct strings whose placeholders are exactly ``fields``."""
        if not isinstance(value, list) or not value:
            self.fail(where, "expected a non-empty list of strings")
        seen: set[str] = set()
        for i, text in enumerate(value):
            here = f"{where}[{i}]"
            if not isinstance(text, str):
                self.fail(here, f"expected a string, got {type(text).__name__}")
            if not text and not allow_empty:
                self.fail(here, "empty string")
            if one_line and ("\n" in text or "\r" in text):
                self.fail(here, "must not contain a line break")
            if text in seen:
                self.fail(here, f"duplicate entry {text!r}")
            seen.add(text)
            try:
                parsed = [
                    (n, spec, conv)
                    for _, n, spec, conv in string.Formatter().parse(text)
                    if n is not None
                ]
            except ValueError as exc:
                self.fail(
                    here,
                    f"bad placeholder syntax in {text!r} ({exc}); write a literal brace as "
                    "{{ or }}",
                )
            for name, spec, conv in parsed:
                # a width such as {n:>999999999} would make one sample of any size
                if spec or conv:
                    self.fail(
                        here,
                        f"placeholder {{{name}{'!' + conv if conv else ''}"
                        f"{':' + spec if spec else ''}}} in {text!r}: write {{{name}}} "
                        "alone (no format spec or conversion)",
                    )
            found = [name for name, _, _ in parsed]
            if sorted(found) != sorted(fields):
                want = ", ".join("{" + f + "}" for f in sorted(fields)) or "no placeholder"
                self.fail(here, f"{text!r} must contain {want} exactly once each")

    def pairs(self, value: Any, where: str, *, allow_empty: bool) -> None:
        if not isinstance(value, list) or not value:
            self.fail(where, "expected a non-empty list of [begin, end] pairs")
        for i, pair in enumerate(value):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(p, str) for p in pair)
            ):
                self.fail(f"{where}[{i}]", f"expected a pair of strings, got {pair!r}")
            for part in pair:
                if not allow_empty and not part:
                    self.fail(f"{where}[{i}]", "empty string")
                if "{" in part or "}" in part or "\n" in part:
                    self.fail(f"{where}[{i}]", f"{part!r} must not contain braces or line breaks")

    def known_rules(self, rules: dict[str, Any], known: tuple[str, ...], where: str) -> None:
        """Every rule of a section is one the strategy knows."""
        for rule in rules:
            if rule not in known:
                self.fail(f"{where}.{rule}", f"unknown rule; the rules are {', '.join(known)}")


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
