"""Layouts: how a sample's instructions and answers are laid out, and rendering them.

A layout decides the number labels (or none), begin/end tags around every answer (stated by a
meta-instruction), otherwise a generic meta-instruction or none at all (plain concatenation),
where the meta-instruction goes and which separators join the parts. Its pools are the rule
pack's ``format`` section; the paper calls a sample that gets only a layout the Format strategy
(:mod:`.strategies.format`). Fitting a drawn layout to its records' texts is :mod:`.fitting`.

Reading a response or a rendered prompt back is the verifier's (:mod:`mosaic_it.verifier`),
which renders nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from mosaic_it.errors import InputError
from mosaic_it.method.metalike import MetaLike, meta_like
from mosaic_it.method.pack import RulePack
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

    numbering = numbering_of(label, punctuation, newline) if numbered else None
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
def numbering_of(label: str, punctuation: str, newline: bool) -> Numbering:
    """One Numbering per style, so that the labels it renders are kept across samples."""
    return Numbering(label, punctuation, newline)


@lru_cache(maxsize=4096)
def _tags(pair: tuple[str, str, str, str], lowercase: bool) -> Tags:
    """The tags of a (open, close, begin word, end word) pair of :func:`tag_pairs`, their
    words lowercased or not (one Tags per pair and case, as for :func:`numbering_of`)."""
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
