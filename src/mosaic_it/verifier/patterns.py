"""The regular expressions that find labels and tags in a response, strictly or loosely.

Strict: every label and tag exactly as rendered in the prompt. Loose: markdown decoration,
spacing, the label's punctuation and brackets and any label word naming the right number
("Answer 3:") are forgiven, and tags are found in any case.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mosaic_it.records import Numbering, Tags

STRICT, LOOSE = "strict", "loose"
READ_MODES = (STRICT, LOOSE)

_MARKDOWN = "*_#"
_DECOR = r"[*_#]*"  # markdown emphasis and heading marks, ignored around labels when loose
_TAG_DECOR = r"[*_]*"  # emphasis marks, ignored around tags when loose
_SPACE = r"[ \t]*"


def _flex(text: str) -> str:
    """A regex for ``text`` with any spacing between its words and symbols (case: caller's flag)."""
    return _SPACE.join(re.escape(token) for token in re.findall(r"\w+|[^\w\s]", text))


# words a model may write before the number instead of the label's own ("Answer 3:"); loose
# mode accepts any of them, or the label's own text, or markdown emphasis/heading marks
LABEL_WORDS = (
    "answer",
    "instruction",
    "task",
    "question",
    "response",
    "reply",
    "part",
    "item",
    "step",
    "prompt",
    "request",
    "query",
    "number",
    "no",
)
_LABEL_WORD = r"(?P<word>(?:" + "|".join(LABEL_WORDS) + r")\.?(?![A-Za-z]))"


def _label_regex(numbering: Numbering, number: str, loose: bool, before: str = "") -> str:
    """Regex for the label of ``number`` (itself a regex: ``\\d+`` for any), captured as ``n``.

    ``before`` is a regex of what may directly follow the label (the begin tag): loose mode then
    leaves a ":" or "." that starts it to the tag ("### 1 ::res_start::").
    """
    prefix, suffix = numbering.label.format(n="\0").split("\0", 1)
    num = rf"(?<!\d)(?P<n>{number})(?!\d)"
    if not loose:
        tail = suffix + numbering.punctuation + ("\n" if numbering.newline else " ")
        return re.escape(prefix) + num + re.escape(tail)
    # loose: markdown marks, spacing, brackets and punctuation (".", ":", ")" or none) may vary,
    # and the label's words may be any label word; what must be there is the number, plus the
    # label's own text, a label word or an emphasis/heading mark (so that a plain "2." line of
    # a list stays text, unless the label itself is a bare number)
    core_prefix, core_suffix = prefix.strip(_MARKDOWN + " "), suffix.strip(_MARKDOWN + " ")
    lead = _SPACE + r"(?:(?P<mark>[*#][*_#]*)|_*)" + _SPACE
    pre = rf"(?P<pre>{_flex(core_prefix)})?" if core_prefix else ""
    suf = rf"(?P<suf>{_flex(core_suffix)})?" if core_suffix else ""
    other = r"(?(word)|(?(mark)|(?!)))"  # no own text: a label word or a mark is needed
    # the label's own text, all of it, or else ``other``; a label made of markdown marks alone
    # ("### {n}", "**{n}**") needs a mark or a word, so that a list's "2." stays text
    own = other if any(ch in _MARKDOWN for ch in prefix + suffix) else ""
    for group, core in (("suf", core_suffix), ("pre", core_prefix)):
        if core:
            own = f"(?({group}){own}|{other})"
    avoid = rf"(?!\s*(?:{before}))" if before else ""
    return (
        lead
        + rf"(?:{_LABEL_WORD}{_SPACE})?"
        + pre
        + _SPACE
        + _DECOR
        + num
        + _DECOR
        + _SPACE
        + suf
        + own
        + _SPACE
        + _DECOR
        + rf"(?:{avoid}{_SPACE}[.:)](?!\d))?"
        + _DECOR
        + r"(?![A-Za-z0-9])"
    )


def _tag_regex(tag: str, loose: bool) -> str:
    if not loose:
        return re.escape(tag)
    return _TAG_DECOR + _SPACE + _flex(tag) + _SPACE + _TAG_DECOR


class Patterns:
    """The compiled regexes that read responses with one label and tag style in one mode."""

    def __init__(self, numbering: Numbering | None, tags: Tags | None, loose: bool) -> None:
        self.numbering = numbering
        self.loose = loose
        self.flags = re.MULTILINE | re.DOTALL | (re.IGNORECASE if loose else 0)
        self._labels: dict[int, re.Pattern[str]] = {}
        begin = _tag_regex(tags.begin, loose) if tags else ""
        self.before = begin
        if numbering:
            self.label_any = re.compile(
                "^" + _label_regex(numbering, r"\d+", loose, begin), self.flags
            )
        if tags:
            end = _tag_regex(tags.end, loose)
            self.begin = re.compile(begin, self.flags)
            self.end = re.compile(end, self.flags)
            self.begin_here = re.compile((r"\s*" if loose else "") + begin, self.flags)
            self.tail = re.compile(end + r"\Z", self.flags)
            if numbering:
                label = _label_regex(numbering, r"\d+", loose, begin) + (r"\s*" if loose else "")
                self.head = re.compile(label + begin, self.flags)
                # between answers: the end tag, white space (a line break at least, when strict,
                # so that the label starts a line), the next label and its begin tag
                gap = r"\s*" if loose else r"\s*\n"
                self.boundary = re.compile(end + gap + label + begin, self.flags)
            else:
                self.head = re.compile(begin, self.flags)
                self.boundary = re.compile(end + r"\s*" + begin, self.flags)

    def label(self, number: int) -> re.Pattern[str]:
        """The label of one number, at the start of a line."""
        pattern = self._labels.get(number)
        if pattern is None:
            assert self.numbering is not None  # labels are looked for only in numbered samples
            body = _label_regex(
                self.numbering,
                str(number),
                self.loose,
                self.before,
            )
            pattern = self._labels[number] = re.compile("^" + body, self.flags)
        return pattern


@lru_cache(maxsize=256)
def compiled_patterns(numbering: Numbering | None, tags: Tags | None, loose: bool) -> Patterns:
    # compiling is most of the cost of reading a response; a data set has few label/tag styles
    return Patterns(numbering, tags, loose)
