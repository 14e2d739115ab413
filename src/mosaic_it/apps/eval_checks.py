"""What makes a composed item fit for an evaluation set (see :mod:`mosaic_it.apps.make_eval`):
a layout that shows whether the constraint was kept, tags that are not Markdown or chat-control
strings, records whose prompt holds what it refers to, and length, word and letter decisions
clear enough to call."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise

from mosaic_it.method.layout import Layout, render_instruction
from mosaic_it.method.strategies import maskout
from mosaic_it.method.strategies.base import Item
from mosaic_it.method.strategies.permute import SORT_RULES
from mosaic_it.records import MosaicSpec, Record, Sample, Tags

# the clearest margins a length decision must have (the engine's own definitions of words and
# characters are used: permute.SORT_RULES)
WORD_MARGIN = 2
CHAR_MARGIN = 10
# what the prompt of a length item says about inputs (unless its meta-instruction already does)
INPUT_NOTE = "An instruction's length includes its input text, if it has one."
LENGTH_RULES = {("permute", r) for r in SORT_RULES if "LENGTH" in r} | {
    ("maskout", "WORD_LONG"),
    ("maskout", "WORD_SHORT"),
}


def layout_is_checkable(strategy: str, layout: Layout) -> bool:
    """Whether a response in this layout shows whether the strategy's constraint was kept."""
    if layout.tags is not None and tag_problem(layout.tags):
        return False
    if strategy == "maskout":
        return layout.numbering is not None and layout.tags is not None
    if strategy == "permute":
        return layout.numbering is not None
    return layout.numbering is not None or layout.tags is not None


_MARKDOWN_TAG = re.compile(r"^(?:\*|_|~~|#|==|\$|--|\^\^|%%|<!|`)")
_CHAT_CONTROL = re.compile(r"<\||\|>|\[/?INST\]|</?s>|<<SYS>>", re.IGNORECASE)


def tag_problem(tags: Tags) -> str | None:
    """Why a tag pair is unfit for an evaluation prompt: Markdown syntax (a chat interface
    renders ``**BOR**`` as bold, ``__open__`` as bold, ``## x ##`` as a heading) or a string that
    looks like a chat model's control tokens (``<|start|>``)."""
    for tag in (tags.begin, tags.end):
        if _MARKDOWN_TAG.match(tag):
            return f"tag {tag!r} is Markdown syntax"
        if _CHAT_CONTROL.search(tag):
            return f"tag {tag!r} looks like a chat-control string"
    return None


# ---------------------------------------------------------------------------- records to leave out

_FILE_LINK = re.compile(
    r"https?://\S+?\.(?:png|jpe?g|gif|bmp|svg|webp|tiff?|pdf|docx?|xlsx?|pptx?|csv|txt|mp3|wav|"
    r"ogg|mp4|avi|mov|mkv|zip)\b",
    re.IGNORECASE,
)
_LINK_ONLY = re.compile(r"^\s*https?://\S+\s*$")
_LINKED_CONTENT = re.compile(
    r"\b(?:article|web ?page|website|page|site|painting|photo|picture|image|video|post|content)"
    r"\b",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"<(?:[A-Z][A-Za-z ]{0,30}|noinput|no input)>")
_THINGS = (
    r"text|passage|article|paragraph|sentences?|story|poem|essay|document|e-?mail|letter|"
    r"code|table|data|dataset|list|statement|song|lyrics|image|picture|photo|painting|"
    r"chart|graph|file|video|recording|website|web ?page|tweet|review|excerpt|speech|"
    r"conversation|dialogue"
)
_POINTER = re.compile(
    rf"\b(?:following|below|attached)\s+(?:\w+\s+)?(?:{_THINGS})\b\W*$", re.IGNORECASE
)


def absent_referent(record: Record) -> str | None:
    """What a record's prompt refers to that the prompt does not hold, or None.

    A link to an image or a file, a link standing alone for an article or a page, a placeholder
    such as ``<Song>``, or "the following text" at the very end of an instruction with no input.
    """
    text = f"{record.instruction}\n{record.input}"
    if _FILE_LINK.search(text):
        return "a link to an image or file"
    if _LINK_ONLY.match(record.input) and _LINKED_CONTENT.search(record.instruction):
        return "a link to a page"
    if _PLACEHOLDER.search(text):
        return "a placeholder"
    if not record.input.strip() and _POINTER.search(record.instruction.strip()):
        return "a pointer to text that is not there"
    return None


# ---------------------------------------------------------------------------- margins


def margin_problem(spec: MosaicSpec, records: Sequence[Record]) -> str | None:
    """Why a length, word or letter decision of an item is too close to call (None: it is clear).

    Decided twice, with each instruction's input counted and without it: both must give the
    spec's answer and clear every margin. (A decision of the engine's that already keeps these
    margins passes unchanged; this check is what make-eval adds on top.)
    """
    if spec.strategy == "permute" and spec.rule in SORT_RULES:
        if spec.answer_order == sorted(spec.answer_order):
            return "the order asked is the order given"
        key = SORT_RULES[spec.rule][0]
        if "ALPHA" in spec.rule:
            starts = [r.instruction.lstrip()[:1] for r in records]
            if not all(ch.isascii() and ch.isalpha() for ch in starts):
                return "an instruction does not start with a letter"
            if len({ch.lower() for ch in starts}) < len(starts):
                return "two instructions start with the same letter"
            return None
        margin = CHAR_MARGIN if "CHAR" in spec.rule else WORD_MARGIN
        for texts in ([r.prompt for r in records], [r.instruction for r in records]):
            keys = {n: key(t) for n, t in enumerate(texts, start=1)}
            ordered = [keys[n] for n in spec.answer_order]
            gaps = [abs(a - b) for a, b in pairwise(ordered)]
            if sorted(ordered, reverse="REVERSE" in spec.rule) != ordered:
                return "the order depends on whether the input counts"
            if min(gaps) < margin:
                return f"two instructions differ in length by {min(gaps)} (< {margin})"
        return None
    if spec.strategy == "maskout" and spec.rule in ("WORD_LONG", "WORD_SHORT"):
        word_count = SORT_RULES["LENGTH_WORD"][0]
        for texts in ([r.prompt for r in records], [r.instruction for r in records]):
            items = [Item(n, t) for n, t in enumerate(texts, start=1)]
            if maskout.expected_masked(spec.rule, items, spec.rule_params) != sorted(spec.masked):
                return "the skipped instructions depend on whether the input counts"
            skipped = [word_count(texts[n - 1]) for n in spec.masked]
            kept = [word_count(texts[n - 1]) for n in spec.answer_order]
            gap = min(skipped) - max(kept) if spec.rule == "WORD_LONG" else min(kept) - max(skipped)
            if gap < WORD_MARGIN:
                return f"the cut between skipped and answered is {gap} word(s) (< {WORD_MARGIN})"
        return None
    if spec.strategy == "permute" and spec.answer_order == sorted(spec.answer_order):
        return "the order asked is the order given"
    return None


def with_input_note(sample: Sample, records: Sequence[Record]) -> Sample:
    """A length item's prompt says that inputs count (unless its meta-instruction says so).

    The prompt is rendered again in the layout the sample was composed in (``sample.layout``:
    the plan's, or the one fitted to its records), so that it reads as its spec says."""
    spec = sample.spec
    if (spec.strategy, spec.rule) not in LENGTH_RULES or "input" in spec.meta.lower():
        return sample
    # the note ends the meta-instruction, beside the rule sentence: after the instructions when
    # any of it is there (the rule sentence is the tail), else before them
    head, tail = spec.meta_parts()
    if tail:
        tail = f"{tail} {INPUT_NOTE}"
        if head:
            spec.meta_tail = tail
    else:
        head = f"{head} {INPUT_NOTE}"
    spec.meta = f"{spec.meta} {INPUT_NOTE}"
    layout: Layout = sample.layout
    instruction = render_instruction(layout, [r.prompt for r in records], head, tail)
    return Sample(instruction, sample.output, spec, sample.system, layout, None, sample.replaced)
