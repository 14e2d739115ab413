"""Layouts: how a sample's instructions and answers are laid out, and rendering them.

A layout decides the number labels (or none), begin/end tags around every answer (stated by a
meta-instruction), otherwise a generic meta-instruction or none at all (plain concatenation),
where the meta-instruction goes and which separators join the parts. Its pools are the rule
pack's ``format`` section; the paper calls a sample that gets only a layout the Format strategy
(:mod:`.strategies.format`).

Reading a response or a rendered prompt back is the verifier's (:mod:`mosaic_it.verifier`),
which renders nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from mosaic_it.errors import InputError
from mosaic_it.method.metalike import MetaLike, meta_like
from mosaic_it.method.rulepack import RulePack
from mosaic_it.records import Numbering, Tags
from mosaic_it.rng import Rng

TAGS, GENERIC, PLAIN = "tags", "generic", "plain"
LAYOUT_KINDS = (TAGS, GENERIC, PLAIN)  # written as a spec's "format"


@dataclass(frozen=True, slots=True)
class Layout:
    kind: str  # one of LAYOUT_KINDS
    numbering: Numbering | None
    tags: Tags | None
    meta: str  # the layout's meta-instruction (tags or generic), "" for plain
    meta_after: bool
    instruction_separator: str
    meta_separator: str
    response_separator: str
    # where a rule's meta-instruction goes (None: on the layout sentence's side)
    rule_after: bool | None = None
    tag_phrasing: str = ""  # the tag phrasing, with {begin} and {end}, to restate other tags
    # tells instructions that read as meta-instructions, which this layout may not hold unless
    # it numbers them and has no tags (None: any instruction may go with it)
    meta_like: MetaLike | None = field(default=None, compare=False, repr=False)


T = TypeVar("T")


def label_styles(pack: RulePack) -> list[tuple[str, str]]:
    """Every (label, punctuation) pair of the pack, in a fixed order."""
    styles = pack.derived.get("label_styles")
    if styles is None:
        cfg = pack.layout
        styles = pack.derived["label_styles"] = [
            (label, punct) for label in cfg["labels"] for punct in cfg["label_punctuation"]
        ]
    return styles


def tag_pairs(pack: RulePack) -> list[tuple[str, str, str, str]]:
    """Every (open, close, begin word, end word) whose tags, in either case, hold none of the
    strings the pack avoids (chat-control tokens such as ``<|end|>``) and none of the strings
    no tag may hold (``format.tag_avoid_strings``: Markdown or LaTeX emphasis and maths, which
    a chat window renders, and control-token look-alikes such as ``<|...|>``)."""
    pairs = pack.derived.get("tag_pairs")
    if pairs is None:
        cfg, avoided = pack.layout, pack.avoided
        markup = tuple(cfg["tag_avoid_strings"])
        pairs = pack.derived["tag_pairs"] = [
            (open_, close, b, e)
            for open_, close in cfg["tag_brackets"]
            for b, e in cfg["tag_words"]
            if not any(
                avoided.found_in(tag) or any(m in tag for m in markup)
                for tag in (open_ + w + close for w in (b, e, b.lower(), e.lower()))
            )
        ]
        if not pairs:
            raise InputError(f"{pack.source}: every tag holds a string that must be avoided")
    return pairs


def meta_separators(pack: RulePack) -> list[str]:
    """The pack's meta separators that hold a blank line: after one newline alone, a reader
    may take the meta-instruction for a line of the last input (older packs hold "\n"; it is
    never drawn)."""
    seps = pack.derived.get("meta_separators")
    if seps is None:
        seps = pack.derived["meta_separators"] = [
            s for s in pack.layout["meta_separators"] if s.count("\n") >= 2
        ]
    return seps


def choose_layout(rng: Rng, pack: RulePack) -> Layout:
    """Draw a layout. The draws happen in a fixed order, whatever the outcome."""
    cfg = pack.layout
    chance, choice = rng.chance, rng.choice  # bound once: a layout is drawn for every sample
    numbered = not chance(cfg["unnumbered_probability"])
    label, punctuation = choice(label_styles(pack))
    newline = chance(cfg["label_newline_probability"])
    use_tags = chance(cfg["tag_probability"])
    pair = choice(tag_pairs(pack))
    lowercase = chance(cfg["tag_lowercase_probability"])
    tag_phrasing = choice(cfg["tag_phrasings"])
    use_generic = chance(cfg["generic_probability"])
    generic_phrasing = choice(cfg["generic_phrasings"])
    meta_after = chance(cfg["meta_after_probability"])
    rule_after = chance(cfg["meta_after_probability"])
    instruction_separator = choice(cfg["instruction_separators"])
    meta_separator = choice(meta_separators(pack))

    numbering = _numbering(label, punctuation, newline) if numbered else None
    if numbering is None:
        # without labels, a blank line is what tells one instruction from the next
        instruction_separator = max(cfg["instruction_separators"], key=len)
    tags = _tags(pair, lowercase) if use_tags else None
    if tags:
        kind, meta = TAGS, tag_phrasing.format(begin=tags.begin, end=tags.end)
    elif use_generic:
        kind, meta = GENERIC, generic_phrasing
    else:
        kind, meta = PLAIN, ""
    return Layout(
        kind,
        numbering,
        tags,
        meta,
        meta_after,
        instruction_separator,
        meta_separator,
        cfg["response_separator"],
        rule_after if cfg["meta_placement"] == "independent" else None,
        tag_phrasing if tags else "",
        meta_like(pack),
    )


@lru_cache(maxsize=4096)
def _numbering(label: str, punctuation: str, newline: bool) -> Numbering:
    """One Numbering per style, so that the labels it renders are kept across samples."""
    return Numbering(label, punctuation, newline)


@lru_cache(maxsize=4096)
def _tags(pair: tuple[str, str, str, str], lowercase: bool) -> Tags:
    """The tags of a (open, close, begin word, end word) pair of :func:`tag_pairs`, their
    words lowercased or not (one Tags per pair and case, as for :func:`_numbering`)."""
    open_, close, begin_word, end_word = pair
    if lowercase:
        begin_word, end_word = begin_word.lower(), end_word.lower()
    return Tags(open_ + begin_word + close, open_ + end_word + close)


def plain_layout(pack: RulePack) -> Layout:
    """The smallest layout: no labels, tags or meta-instruction (used when nothing else fits)."""
    cfg = pack.layout
    return Layout(
        PLAIN,
        None,
        None,
        "",
        False,
        "\n",
        "\n",
        cfg["response_separator"],
        meta_like=meta_like(pack),
    )


# ---------------------------------------------------------------------- fitting a layout to texts
#
# A layout is drawn before the sample's records are known; the records then decide what a reader
# could misread. Labels: no line of any instruction, input or answer may begin the way a label
# of the style would (a Markdown list "1. ..." under the label "{n}" + "."). Tags: neither tag
# may occur in any of those texts. Unnumbered: every instruction is one paragraph (a blank line
# is what separates them). Where the drawn layout does not fit, the first style that fits in a
# random order seeded by the sample's path is used: the choice is uniform among the styles that
# fit, and growing a sample by a record keeps its style unless the new record rules it out.


_BLANK_LINE = re.compile(r"\n[ \t]*(?:\n|$)|^[ \t]*\n")


# the lines a label could be read in: a digit among their first 25 characters (cut 40
# characters past it); what ``re.findall(r"^[^\n\d]{0,24}\d[^\n]{0,40}", text, re.MULTILINE)``
# gives, found by splitting the text (the expression tries every position of the text)
_DIGIT = re.compile(r"\d")
_LINE_HEAD = 25  # characters of a line its first digit must be among
_LINE_CUT = 40  # characters kept past that digit
_ASCII_DIGITS = "0123456789"


@lru_cache(maxsize=4096)
def _label_start(label: str, punctuation: str) -> re.Pattern[str]:
    """A line that begins the way a label of this style does, for any number (matched against
    the start of a line, cut after 40 characters past its first digit). The punctuation after
    the label may be any of ".", ":" or none, since a loose reader forgives it: "2. Eat" in
    an answer would read as label 2 of the style "{n}"."""
    del punctuation  # every punctuation collides, the style's own included
    head, _, tail = label.partition("{n}")
    return re.compile(re.escape(head) + r"\d+" + re.escape(tail) + r"[.:]?(?:\s|$)")


def _has_digit(text: str) -> bool:
    if text.isascii():  # a search for each digit beats the regex's test of every character
        for digit in _ASCII_DIGITS:
            if digit in text:
                return True
        return False
    return _DIGIT.search(text) is not None


def _line_cuts(text: str) -> tuple[str, ...]:
    """The starts of the lines of ``text`` that hold a digit near their beginning: the only
    lines a label could be read in."""
    if not _has_digit(text):
        return ()
    cuts = []
    search = _DIGIT.search
    for line in text.split("\n"):
        digit = search(line, 0, _LINE_HEAD)
        if digit is not None:
            cuts.append(line[: digit.start() + 1 + _LINE_CUT])
    return tuple(cuts)


# kept per text: a record is checked in every sample when its facts are not noted
_numbered_lines = lru_cache(maxsize=1 << 16)(_line_cuts)


def one_paragraph(text: str) -> bool:
    """Whether ``text`` holds no blank line (so a blank line can separate it from the next)."""
    return "\n" not in text or _BLANK_LINE.search(text) is None


@lru_cache(maxsize=4096)
def _short_label_match(label: str, punctuation: str) -> Callable[[str], object] | None:
    """The match of :func:`_label_start` for a label short enough to be read within the lines
    :func:`_numbered_lines` cuts, None for a longer one (kept per style: called for every
    record of every sample)."""
    head, _, tail = label.partition("{n}")
    if len(head) > 24 or len(tail + punctuation) > 30:  # longer than the cut lines
        return None
    return _label_start(label, punctuation).match


def numbering_fits(numbering: Numbering, texts: Sequence[str]) -> bool:
    match = _short_label_match(numbering.label, numbering.punctuation)
    if match is None:
        pattern = _label_start(numbering.label, numbering.punctuation)
        return not any(re.search("^" + pattern.pattern, t, re.MULTILINE) for t in texts)
    for t in texts:  # loops, not any() over a generator: a quarter of a million calls a run
        for line in _numbered_lines(t):
            if match(line):
                return False
    return True


def tags_fit(tags: Tags, texts: Sequence[str]) -> bool:
    begin, end = tags.begin, tags.end
    for t in texts:
        if begin in t or end in t:
            return False
    return True


def layout_fits(
    layout: Layout, prompts: Sequence[str], outputs: Sequence[str], many: bool | None = None
) -> bool:
    """Whether a reader can read ``layout`` unambiguously around these texts; ``many``: whether
    the sample holds more than one instruction (by default, whether ``prompts`` does)."""
    texts = [*prompts, *outputs]
    if (
        layout.meta_like is not None
        and (layout.numbering is None or layout.tags is not None)
        and any(map(layout.meta_like, prompts))
    ):
        return False  # an instruction that reads as a meta-instruction: numbered, no tags
    if layout.numbering is None:
        if (len(prompts) > 1 if many is None else many) and not all(map(one_paragraph, prompts)):
            return False
    elif not numbering_fits(layout.numbering, texts):
        return False
    return layout.tags is None or tags_fit(layout.tags, texts)


# ---------------------------------------------------------------------- what each record rules out
#
# Grouping tests the layout of a growing sample against every record of every sample of every
# epoch, and the same record always gives the same answer for the same label style. So each
# record's facts are noted once, when it is admitted, as one byte: which label styles a line of
# its texts begins like, and whether its prompt holds a blank line. A record whose facts miss a
# layout's needs (:meth:`FitFacts.needs`) reads unambiguously with it as far as labels and blank
# lines go; tags are tested on the texts themselves (a substring test, cheaper than noting
# which of the pack's thousand tags a text holds).

PARAGRAPHS = 1  # the prompt holds a blank line: it cannot go unnumbered among others
META_LIKE = 2  # the prompt reads as a meta-instruction: numbered, without tags or a rule
_LABEL_BITS = 2  # the first label checker's bit is 1 << this
_MAX_KINDS = 255  # kinds of facts one byte names; the last stands for "unknown: test the texts"
_TEXT_CACHE = 4096  # texts whose label bits are kept: a run's repeated texts, never its whole text


class FitFacts:
    """What each record's texts rule out for layouts, noted once per record (:meth:`note`).

    ``codes`` holds one byte a record: an index into ``kinds``, the distinct sets of facts met
    so far as bits (:data:`PARAGRAPHS`, then one bit per label checker). The last code stands
    for facts not noted (or past 254 kinds): every bit set, so the texts are tested instead.
    """

    def __init__(self, pack: RulePack) -> None:
        checkers: dict[tuple[str, bool], int] = {}
        self._bits: dict[tuple[str, str], int] = {}  # label style -> its checker's bit
        # short checkers by the first character of their label ("" for a label that begins
        # with its number): a line is tried only against the labels it may begin like
        self._short: dict[str, list[tuple[Callable[[str], object], int]]] = {}
        self._long: list[tuple[re.Pattern[str], int]] = []
        for label, punctuation in label_styles(pack):
            # numbering_fits reads a style by its label and by whether it is short
            match = _short_label_match(label, punctuation)
            key = (label, match is not None)
            bit = checkers.get(key)
            if bit is None:
                bit = checkers[key] = 1 << (len(checkers) + _LABEL_BITS)
                if match is not None:
                    head = label.partition("{n}")[0]
                    self._short.setdefault(head[:1], []).append((match, bit))
                else:
                    start = _label_start(label, punctuation).pattern
                    self._long.append((re.compile("^" + start, re.MULTILINE), bit))
            self._bits[(label, punctuation)] = bit
        self.unknown = (1 << (len(checkers) + _LABEL_BITS)) - 1  # every bit
        self._meta_like = meta_like(pack)
        self.kinds: list[int] = [0] * _MAX_KINDS + [self.unknown]
        self._kind_codes: dict[int, int] = {0: 0}
        self.codes = bytearray()
        self._label_bits = lru_cache(maxsize=_TEXT_CACHE)(self._labels_of)

    def _labels_of(self, text: str) -> int:
        """The bits of the label checkers a line of ``text`` begins like."""
        bits = 0
        short = self._short
        numeric = short.get("", ())
        for line in _line_cuts(text):
            for match, bit in (*numeric, *short.get(line[:1], ())):
                if not bits & bit and match(line):
                    bits |= bit
        for pattern, bit in self._long:
            if pattern.search(text):
                bits |= bit
        return bits

    def facts_of(self, prompt: str, output: str) -> int:
        """The facts of a record's texts, as bits (a pure function of the texts: it may run on
        a forked worker, and :meth:`note` keep them)."""
        bits = self._label_bits(prompt) | self._label_bits(output)
        if not one_paragraph(prompt):
            bits |= PARAGRAPHS
        if self._meta_like(prompt):
            bits |= META_LIKE
        return bits

    def note(self, index: int, bits: int) -> None:
        """Keep the facts (:meth:`facts_of`) of record ``index`` (records not noted read as
        unknown)."""
        code = self._kind_codes.get(bits)
        if code is None:
            code = len(self._kind_codes)
            if code < _MAX_KINDS:
                self._kind_codes[bits] = code
                self.kinds[code] = bits
            else:
                code = _MAX_KINDS
        if index == len(self.codes):
            self.codes.append(code)
        else:
            self.cover(index + 1)
            self.codes[index] = code

    def cover(self, records: int) -> None:
        """Make room for the facts of ``records`` records (those not noted read as unknown)."""
        if len(self.codes) < records:
            self.codes.extend(bytes([_MAX_KINDS]) * (records - len(self.codes)))

    def unplaceable(self, bits: int) -> bool:
        """Whether a record with these facts reads as a meta-instruction and no label style
        fits its texts: it could only go unnumbered, which it may not, so it is left out."""
        labels = self.unknown & ~(PARAGRAPHS | META_LIKE)
        return bool(bits & META_LIKE) and bits & labels == labels

    def needs(self, layout: Layout) -> tuple[int, int, bool]:
        """The facts that rule ``layout`` out for a sample's only record and for a record among
        several, and whether the texts must be tested whatever the facts (a label style the
        pack does not hold)."""
        if layout.numbering is None:
            return META_LIKE, PARAGRAPHS | META_LIKE, False
        bit = self._bits.get((layout.numbering.label, layout.numbering.punctuation))
        if bit is None:
            return 0, 0, True
        if layout.tags is not None:
            bit |= META_LIKE
        return bit, bit, False


def fit_layout(
    pack: RulePack,
    layout: Layout,
    rng: Callable[[], Rng],
    prompts: Sequence[str],
    outputs: Sequence[str],
) -> Layout | None:
    """``layout``, or the layout nearest to it that fits these texts (another label style,
    numbered instead of unnumbered, other tags); None when no style fits. ``rng`` makes the
    generator of the random order, only when one is needed."""
    if layout_fits(layout, prompts, outputs):
        return layout
    texts = [*prompts, *outputs]
    numbering, tags, meta, kind = layout.numbering, layout.tags, layout.meta, layout.kind
    instruction_separator = layout.instruction_separator
    order = rng()
    found_meta_like = layout.meta_like is not None and any(map(layout.meta_like, prompts))
    if found_meta_like and tags is not None:
        # tags stated beside an instruction about answering: the sample goes without either
        tags, meta, kind = None, "", PLAIN
    if numbering is None and (
        found_meta_like or (len(prompts) > 1 and not all(map(one_paragraph, prompts)))
    ):
        # cannot be read unnumbered: number it, with a style drawn for it
        newline = order.chance(pack.layout["label_newline_probability"])
        numbering = _numbering(*order.choice(label_styles(pack)), newline)
    if numbering is not None and not numbering_fits(numbering, texts):
        styles = list(label_styles(pack))
        order.shuffle(styles)
        fitting = (_numbering(lab, punct, numbering.newline) for lab, punct in styles)
        numbering = next((n for n in fitting if numbering_fits(n, texts)), None)
        if numbering is None:
            return None
    if tags is not None and not tags_fit(tags, texts):
        lower = tags.begin != tags.begin.upper() or tags.end != tags.end.upper()
        pairs = list(tag_pairs(pack))
        order.shuffle(pairs)
        candidates = (
            Tags(o + (b.lower() if lower else b) + c, o + (e.lower() if lower else e) + c)
            for o, c, b, e in pairs
        )
        tags = next((t for t in candidates if tags_fit(t, texts)), None)
        if tags is None:
            return None
        meta = layout.tag_phrasing.format(begin=tags.begin, end=tags.end)
    return Layout(
        kind,
        numbering,
        tags,
        meta,
        layout.meta_after,
        instruction_separator,
        layout.meta_separator,
        layout.response_separator,
        layout.rule_after,
        layout.tag_phrasing if tags else "",
        layout.meta_like,
    )


def place_meta(layout: Layout, rule_meta: str) -> tuple[str, str]:
    """The meta-instruction text before the instructions and the text after them: the layout
    sentence on its side, the rule's sentence on its own side (or with the layout sentence)."""
    before: list[str] = []
    after: list[str] = []
    if layout.meta:
        (after if layout.meta_after else before).append(layout.meta)
    if rule_meta:
        rule_after = layout.meta_after if layout.rule_after is None else layout.rule_after
        (after if rule_after else before).append(rule_meta)
    return " ".join(before), " ".join(after)


def instruction_parts(
    layout: Layout, prompts: Sequence[T], head: str, tail: str = "", at: list[int] | None = None
) -> list[str | T]:
    """The instruction block, with meta-instruction text ``head`` before it and ``tail`` after
    it, as a list of parts; where each prompt went is appended to ``at``, if given.

    ``prompts`` may be texts (to render) or anything standing for them (to count), so the text
    and its token count come from this one description of the layout.
    """
    parts: list[str | T] = [head, layout.meta_separator] if head else []
    # names bound once: this runs twice for every sample (rendering it, counting it)
    separator, append = layout.instruction_separator, parts.append
    label = layout.numbering.render if layout.numbering else None
    for number, prompt in enumerate(prompts, start=1):
        if number > 1:
            append(separator)
        if label is not None:
            append(label(number))
        if at is not None:
            at.append(len(parts))
        append(prompt)
    if tail:
        parts += [layout.meta_separator, tail]
    return parts


def response_parts(
    layout: Layout, outputs: Sequence[T], answer_order: list[int], at: list[int] | None = None
) -> list[str | T]:
    """The answers in the order given by instruction number, each with its own label; where
    each answer went is appended to ``at``, if given."""
    parts: list[str | T] = []
    separator, append = layout.response_separator, parts.append
    label = layout.numbering.render if layout.numbering else None
    tags = layout.tags
    for position, number in enumerate(answer_order):
        if position:
            append(separator)
        if label is not None:
            append(label(number))
        if tags:
            append(tags.begin)
        if at is not None:
            at.append(len(parts))
        append(outputs[number - 1])
        if tags:
            append(tags.end)
    return parts


def render_instruction(layout: Layout, prompts: list[str], head: str, tail: str = "") -> str:
    return "".join(instruction_parts(layout, prompts, head, tail))


def render_response(layout: Layout, outputs: list[str], answer_order: list[int]) -> str:
    return "".join(response_parts(layout, outputs, answer_order))
