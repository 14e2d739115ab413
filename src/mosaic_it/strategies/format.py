"""Format: the layout every sample gets, and the Primary Mosaic strategy.

A layout decides the number labels (or none), begin/end tags around every answer (stated by a
meta-instruction), otherwise a generic meta-instruction or none at all (plain concatenation),
where the meta-instruction goes and which separators join the parts.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    numbering = Numbering(label, punctuation, newline) if numbered else None
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


def plain_layout(pack: RulePack) -> Layout:
    """The smallest layout: no labels, tags or meta-instruction (used when nothing else fits)."""
    cfg = pack.format
    return Layout(PLAIN, None, None, "", False, "\n", "\n", cfg["response_separator"])


def label(layout: Layout, number: int) -> str:
    return layout.numbering.render(number) if layout.numbering else ""


def render_instruction(layout: Layout, prompts: list[str], meta: str) -> str:
    """The instruction block with the meta-instruction before or after it."""
    block = layout.instruction_separator.join(
        label(layout, i) + prompt for i, prompt in enumerate(prompts, start=1)
    )
    if not meta:
        return block
    if layout.meta_after:
        return block + layout.meta_separator + meta
    return meta + layout.meta_separator + block


def render_answer(layout: Layout, number: int, output: str) -> str:
    if layout.tags:
        output = layout.tags.begin + output + layout.tags.end
    return label(layout, number) + output


def render_response(layout: Layout, outputs: list[str], answer_order: list[int]) -> str:
    """The answers, in the order given by instruction number, each with its own label."""
    return layout.response_separator.join(
        render_answer(layout, n, outputs[n - 1]) for n in answer_order
    )
