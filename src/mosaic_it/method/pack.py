"""A rule pack as a value: its data, the strings it avoids, and the checks of its values.

What the strategies read (:class:`RulePack`) and what they check their sections with
(:class:`PackChecker`); loading and validating a pack, which asks every registered strategy, is
:mod:`mosaic_it.method.rulepack`.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from mosaic_it.errors import InputError
from mosaic_it.io.jsoncodec import dumps_bytes, loads

# a pool of texts in a pack's data, as (JSON path, holder, key): entries holding a string the
# pack avoids are left out
Pool = tuple[str, dict[str, Any], str]
# a pack's data -> its pools
ListPools = Callable[[dict[str, Any]], list[Pool]]


class RulePackError(InputError):
    """A rule pack that cannot be used; the message names the file and the field."""


def layout_pools(data: dict[str, Any]) -> list[Pool]:
    """The pools of texts outside the strategies' sections: labels and phrasings of the layout,
    and the phrasings of how many inputs there are."""
    layout = data["format"]
    return [
        ("format.labels", layout, "labels"),
        ("format.tag_phrasings", layout, "tag_phrasings"),
        ("format.generic_phrasings", layout, "generic_phrasings"),
        ("input_counts", data, "input_counts"),
    ]


def filter_pools(
    data: dict[str, Any], avoid: tuple[str, ...], source: str, pools: ListPools
) -> None:
    """Leave out every label, phrasing and separator that contains an avoided string (tags are
    built from brackets and words, so whole tags are checked when they are drawn)."""
    avoided = StringSet(avoid)
    for where, holder, key in pools(data):
        kept = [t for t in holder[key] if avoided.found_in(t) is None]
        if not kept:
            found = sorted({avoided.found_in(t) or "" for t in holder[key]})
            raise RulePackError(
                f"{source}: {where}: every entry contains a string that must be "
                f"avoided ({', '.join(found)})"
            )
        holder[key] = kept


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


@dataclass(frozen=True)
class RulePack:
    name: str
    version: int
    data: dict[str, Any]
    source: str
    # pools derived from the data (tag pairs, label styles), made once per pack
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # where the data's pools of texts are, filtered of the strings the pack avoids: the loader
    # (:func:`mosaic_it.method.rulepack.load_rule_pack`) adds each strategy's section's
    pools: ListPools = field(default=layout_pools, compare=False, repr=False)

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
        filter_pools(data, tuple(data["avoid_strings"]), self.source, self.pools)
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
