"""What a rule sees and what it decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Item(NamedTuple):
    """One instruction of a sample, as shown in the prompt (a tuple: made for every sample)."""

    number: int  # 1-based position in the prompt
    text: str


@dataclass(frozen=True, slots=True)
class RuleChoice:
    """A rule applied to a sample: its meta-instruction and the answers that make it true."""

    strategy: str
    rule: str
    meta: str
    answer_order: list[int]  # instruction numbers, in answer order
    masked: list[int] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


def word_count(text: str) -> int:
    return len(text.split())


def first_letter(text: str) -> str | None:
    """The first ASCII letter of a text, lower-cased; None when it starts with another letter.

    "Alphabetical" is only stated for instructions whose first letter is a-z, where A-to-Z order
    is unambiguous; text before it that is not a letter (quotes, digits, markup) is skipped.
    """
    for ch in text:
        if ch.isalpha():
            return ch.lower() if ch.isascii() else None
    return None


def join_numbers(numbers: list[int], separator: str, last_separator: str) -> str:
    """``[2, 5, 7]`` -> ``"2, 5 and 7"``."""
    words = [str(n) for n in numbers]
    if len(words) <= 1:
        return "".join(words)
    return separator.join(words[:-1]) + last_separator + words[-1]


@dataclass(frozen=True, slots=True)
class Check:
    """One thing a response (or a spec) was checked for.

    ``passed`` is None when the spec states nothing that makes it checkable (for instance the
    answer order of an unnumbered sample): "not verifiable" is neither a pass nor a fail.
    """

    name: str
    passed: bool | None
    reason: str = ""

    @property
    def status(self) -> str:
        return "not_verifiable" if self.passed is None else "pass" if self.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "reason": self.reason}


def format_numbers(numbers: list[int] | tuple[int, ...]) -> str:
    return ", ".join(map(str, numbers)) if numbers else "none"
