"""Format: the layout every sample gets, and the Primary Mosaic strategy.

A layout decides the number labels (or none), begin/end tags around every answer (stated by a
meta-instruction), otherwise a generic meta-instruction or none at all (plain concatenation),
where the meta-instruction goes and which separators join the parts.

Reading a response or a rendered prompt back is in :mod:`.parse`, which renders nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from ..records import Numbering, Tags
from ..rng import Rng
from ..rulepack import RulePack


@dataclass(frozen=True, slots=True)
class Layout:
    kind: str  # "tags" | "generic" | "plain"
    numbering: Numbering | None
    tags: Tags | None
    meta: str  # the format meta-instruction, "" for plain
    meta_after: bool
    instruction_separator: str
    meta_separator: str
    response_separator: str


PLAIN = "plain"
T = TypeVar("T")


def choose_layout(rng: Rng, pack: RulePack) -> Layout:
    """Draw a layout. The draws happen in a fixed order, whatever the outcome."""
    cfg = pack.format
    numbered = not rng.chance(cfg["unnumbered_probability"])
    label = rng.choice(cfg["labels"])
    punctuation = rng.choice(cfg["label_punctuation"])
    newline = rng.chance(cfg["label_newline_probability"])
    use_tags = rng.chance(cfg["tag_probability"])
    open_, close = rng.choice(cfg["tag_brackets"])
    begin_word, end_word = rng.choice(cfg["tag_words"])
    if rng.chance(cfg["tag_lowercase_probability"]):
        begin_word, end_word = begin_word.lower(), end_word.lower()
    tag_phrasing = rng.choice(cfg["tag_phrasings"])
    use_generic = rng.chance(cfg["generic_probability"])
    generic_phrasing = rng.choice(cfg["generic_phrasings"])
    meta_after = rng.chance(cfg["meta_after_probability"])
    instruction_separator = rng.choice(cfg["instruction_separators"])
    meta_separator = rng.choice(cfg["meta_separators"])

    numbering = _numbering(label, punctuation, newline) if numbered else None
    if numbering is None:
        # without labels, a blank line is what tells one instruction from the next
        instruction_separator = max(cfg["instruction_separators"], key=len)
    tags = Tags(open_ + begin_word + close, open_ + end_word + close) if use_tags else None
    if tags:
        kind, meta = "tags", tag_phrasing.format(begin=tags.begin, end=tags.end)
    elif use_generic:
        kind, meta = "generic", generic_phrasing
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
    )


@lru_cache(maxsize=4096)
def _numbering(label: str, punctuation: str, newline: bool) -> Numbering:
    """One Numbering per style, so that the labels it renders are kept across samples."""
    return Numbering(label, punctuation, newline)


def plain_layout(pack: RulePack) -> Layout:
    """The smallest layout: no labels, tags or meta-instruction (used when nothing else fits)."""
    cfg = pack.format
    return Layout(PLAIN, None, None, "", False, "\n", "\n", cfg["response_separator"])


def label(layout: Layout, number: int) -> str:
    return layout.numbering.render(number) if layout.numbering else ""


def instruction_parts(layout: Layout, prompts: Sequence[T], meta: str) -> list[str | T]:
    """The instruction block, with the meta-instruction before or after it, as a list of parts.

    ``prompts`` may be texts (to render) or anything standing for them (to count), so the text
    and its token count come from this one description of the layout.
    """
    parts: list[str | T] = []
    if meta and not layout.meta_after:
        parts += [meta, layout.meta_separator]
    for number, prompt in enumerate(prompts, start=1):
        if number > 1:
            parts.append(layout.instruction_separator)
        if layout.numbering:
            parts.append(layout.numbering.render(number))
        parts.append(prompt)
    if meta and layout.meta_after:
        parts += [layout.meta_separator, meta]
    return parts


def response_parts(layout: Layout, outputs: Sequence[T], answer_order: list[int]) -> list[str | T]:
    """The answers in the order given by instruction number, each with its own label."""
    parts: list[str | T] = []
    for position, number in enumerate(answer_order):
        if position:
            parts.append(layout.response_separator)
        if layout.numbering:
            parts.append(layout.numbering.render(number))
        if layout.tags:
            parts += [layout.tags.begin, outputs[number - 1], layout.tags.end]
        else:
            parts.append(outputs[number - 1])
    return parts


def render_instruction(layout: Layout, prompts: list[str], meta: str) -> str:
    return "".join(instruction_parts(layout, prompts, meta))


def render_response(layout: Layout, outputs: list[str], answer_order: list[int]) -> str:
    return "".join(response_parts(layout, outputs, answer_order))
