"""A held-out evaluation set of mosaic prompts whose answers can be verified.

``mosaic-it make-eval INPUT OUTPUT --n N`` composes prompts from held-out records with the same
engine pieces as training data (:func:`compose.plan_sample`, :func:`compose.compose`, seeded
generators), keeping only items a response can be checked against and that test something, and
balances them: the strategies get equal shares of the N items, each strategy's share is split
equally over its rules, and each rule's over the instruction counts.

Which items are kept:

- layouts: a Permute item is numbered (the order shows only in the labels); a Maskout item is
  numbered and tagged (with labels alone, an answer to a skipped instruction that follows
  another answer reads as part of that answer); a Format item is numbered or tagged; no tag is
  Markdown syntax (``**BOR**`` renders as bold) or looks like a chat-control string (``<|x|>``);
- a Permute item never asks for the order as given (ODD_EVEN with 2 instructions always would);
- every length, word or letter decision is clear: neighbours in a length order differ by at
  least :data:`WORD_MARGIN` words or :data:`CHAR_MARGIN` characters, the cut of "the n longest"
  by :data:`WORD_MARGIN` words, first letters are all different and start their instruction;
  the decision is the same whether an instruction's input counts or not, and the prompt says
  that it counts;
- a source record is used once per set while unused ones remain (reuse is reported), and a
  record whose prompt refers to something the model cannot see (a link to an image or a file, a
  placeholder such as ``<Song>``, "the following text" with no text) is left out and counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from mosaic_it.budget.special import run_special_strings
from mosaic_it.budget.templates import Template, get_template
from mosaic_it.budget.tokenizer import Tokenizer, load_tokenizer
from mosaic_it.method.compose import compose, plan_sample
from mosaic_it.method.layout import Layout, render_instruction
from mosaic_it.method.rulepack import MASKOUT_RULES, PERMUTE_RULES, RulePack, load_rule_pack
from mosaic_it.method.strategies import Item, maskout, permute
from mosaic_it.method.strategies.permute import SORT_RULES
from mosaic_it.records import MosaicSpec, Record, Sample, Tags
from mosaic_it.rng import Rng
from mosaic_it.verifier.checks import verify

MAX_ATTEMPTS = 2000  # draws tried for one item before its cell is reported short
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


def eval_rules() -> list[tuple[str, str | None]]:
    """The strategy/rule rows of the balance table: format only, then every rule."""
    return (
        [("format", None)]
        + [("permute", rule) for rule in PERMUTE_RULES]
        + [("maskout", rule) for rule in MASKOUT_RULES]
    )


def rule_name(strategy: str, rule: str | None) -> str:
    return strategy if rule is None else f"{strategy}.{rule}"


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


def _with_input_note(sample: Sample, layout: Layout, records: Sequence[Record]) -> Sample:
    """A length item's prompt says that inputs count (unless its meta-instruction says so)."""
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
    instruction = render_instruction(layout, [r.prompt for r in records], head, tail)
    return Sample(instruction, sample.output, spec, sample.system)


# ---------------------------------------------------------------------------- balance


@dataclass
class Cell:
    """One (strategy/rule, k) cell of the balance table."""

    strategy: str
    rule: str | None
    k: int
    asked: int
    made: int = 0

    @property
    def name(self) -> str:
        return rule_name(self.strategy, self.rule)


@dataclass
class EvalSet:
    items: list[dict[str, Any]]
    cells: list[Cell]
    asked: int
    max_instructions: int
    notes: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # records, by what they refer to
    reused: int = 0  # record uses that repeat an earlier item's record
    rejected: dict[str, int] = field(default_factory=dict)  # draws, by why they were not kept

    def balance(self) -> dict[str, Any]:
        """Counts per cell, per strategy/rule and per instruction count: asked and made."""
        by_rule: dict[str, dict[str, int]] = {}
        by_k: dict[str, dict[str, int]] = {}
        by_strategy: dict[str, dict[str, int]] = {}
        for c in self.cells:
            for table, key in ((by_rule, c.name), (by_k, str(c.k)), (by_strategy, c.strategy)):
                row = table.setdefault(key, {"asked": 0, "made": 0})
                row["asked"] += c.asked
                row["made"] += c.made
        return {
            "asked": self.asked,
            "made": len(self.items),
            "max_instructions": self.max_instructions,
            "records_left_out": self.left_out,
            "records_reused": self.reused,
            "draws_rejected": self.rejected,
            "by_strategy": by_strategy,
            "by_rule": by_rule,
            "by_instructions": by_k,
            "cells": [
                {"strategy": c.strategy, "rule": c.rule, "k": c.k, "asked": c.asked, "made": c.made}
                for c in self.cells
            ],
        }

    def render_balance(self) -> str:
        """The balance table: items made per strategy/rule (rows) and instruction count."""
        ks = sorted({c.k for c in self.cells})
        grid = {(c.name, c.k): c for c in self.cells}
        names = list(dict.fromkeys(c.name for c in self.cells))
        width = max(len(n) for n in names + ["strategy/rule"])
        head = f"{'strategy/rule':{width}} " + " ".join(f"{'k=' + str(k):>6}" for k in ks)
        lines = [head + f" {'total':>7}"]

        def cell_text(made: int, asked: int) -> str:
            return str(made) if made == asked else f"{made}/{asked}"

        for name in names:
            row = [grid.get((name, k)) for k in ks]  # None: a cell that cannot hold an item
            made = sum(c.made for c in row if c)
            asked = sum(c.asked for c in row if c)
            counts = " ".join(f"{cell_text(c.made, c.asked) if c else '-':>6}" for c in row)
            lines.append(f"{name:{width}} {counts} {cell_text(made, asked):>7}")
        totals = [
            (
                sum(c.made for c in self.cells if c.k == k),
                sum(c.asked for c in self.cells if c.k == k),
            )
            for k in ks
        ]
        lines.append(
            f"{'total':{width}} "
            + " ".join(f"{cell_text(m, a):>6}" for m, a in totals)
            + f" {cell_text(len(self.items), self.asked):>7}"
        )
        per_strategy: dict[str, int] = {}
        for c in self.cells:
            per_strategy[c.strategy] = per_strategy.get(c.strategy, 0) + c.made
        lines.append("per strategy: " + ", ".join(f"{s} {m}" for s, m in per_strategy.items()))
        return "\n".join(lines)


def _share(total: int, keys: list[Any], rng: Rng) -> dict[Any, int]:
    """``total`` split equally over ``keys``; the remainder goes to keys drawn at random."""
    base, extra = divmod(total, len(keys))
    lucky = list(range(len(keys)))
    rng.shuffle(lucky)
    share = {key: base for key in keys}
    for i in lucky[:extra]:
        share[keys[i]] += 1
    return share


def possible(strategy: str, rule: str | None, k: int) -> bool:
    """Whether a (rule, k) cell can hold an item that tests something: a Permute rule must be
    able to ask for another order than the given one (ODD_EVEN over 2 instructions cannot)."""
    return strategy != "permute" or permute.can_differ(rule, k)


def allocate(n: int, max_instructions: int, seed: int) -> list[Cell]:
    """Equal shares of ``n`` for the strategies, then for each strategy's rules, then for each
    rule's instruction counts; remainders go to shares drawn at random."""
    if max_instructions < 2:
        raise ValueError(
            "max_instructions: an evaluation mosaic has 2 instructions or more, "
            f"got {max_instructions}"
        )
    if n < 1:
        raise ValueError(f"n: must be at least 1, got {n}")
    # (strategy -> rule -> the instruction counts its items can have); a rule with none is left
    # out, its share going to the strategy's other rules
    counts: dict[str, dict[str | None, list[int]]] = {}
    for strategy, rule in eval_rules():
        ks = [k for k in range(2, max_instructions + 1) if possible(strategy, rule, k)]
        if ks:
            counts.setdefault(strategy, {})[rule] = ks
    cells = []
    by_strategy = _share(n, list(counts), Rng(seed, "eval", "strategies"))
    for strategy, rules in counts.items():
        by_rule = _share(by_strategy[strategy], list(rules), Rng(seed, "eval", strategy))
        for rule, ks in rules.items():
            by_k = _share(by_rule[rule], ks, Rng(seed, "eval", strategy, str(rule)))
            cells += [Cell(strategy, rule, k, by_k[k]) for k in ks]
    return cells


class _Drawer:
    """Draws one verifiable sample for a cell, redrawing layout and records until it fits."""

    def __init__(
        self,
        records: Sequence[Record],
        pack: RulePack,
        template: Template,
        tokenizer: Tokenizer,
        max_tokens: int,
        seed: int,
    ) -> None:
        self.records = records
        self.pack = pack
        self.template = template
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.seed = seed
        # records are only grouped with records of the same system prompt, as in training
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            groups.setdefault(r.system, []).append(i)
        self.groups = groups
        self.group_of = [groups[r.system] for r in records]
        self.largest_group = max(len(g) for g in groups.values())
        self.used: set[int] = set()
        self.reused = 0  # records of kept items that an earlier item had used
        self.rejected: Counter[str] = Counter()  # draws left out, by reason

    def draw(self, cell: Cell, j: int) -> tuple[Sample, list[Record]] | None:
        if cell.k > self.largest_group:
            return None
        for attempt in range(MAX_ATTEMPTS):
            path = (self.seed, "eval", cell.name, cell.k, j, attempt)
            plan = plan_sample(self.pack, (cell.strategy,), path)
            if not layout_is_checkable(cell.strategy, plan.layout):
                continue
            rng = Rng(*path, "records")
            group = self.group_of[rng.below(len(self.records))]
            if len(group) < cell.k:
                continue
            fresh = [i for i in group if i not in self.used]
            # a record is used once per set, while the pool has enough unused ones that fit
            # (after half the attempts, used ones may complete a cell that the rest cannot)
            use_fresh = len(fresh) >= cell.k and attempt < MAX_ATTEMPTS // 2
            chosen = rng.sample(fresh if use_fresh else group, cell.k)
            records = [self.records[i] for i in chosen]
            sample = compose(self.pack, plan, records, 0, template=self.template.name)
            if (sample.spec.strategy, sample.spec.rule) != (cell.strategy, cell.rule):
                continue  # the rule did not apply to these records, or another one was drawn
            problem = margin_problem(sample.spec, records)
            if problem is not None:
                given = "the order given" in problem
                self.rejected["the order as given" if given else "too close to call"] += 1
                continue
            sample = _with_input_note(sample, plan.layout, records)
            tokens = self.template.count(
                self.tokenizer, sample.instruction, sample.output, sample.system
            )
            if tokens > self.max_tokens:
                continue
            sample.spec.tokens = tokens
            verdict = verify(sample.spec, sample.output, prompt=sample.instruction, pack=self.pack)
            if not verdict.passed:  # the engine's own answer must verify: a bug if not
                raise RuntimeError(
                    f"internal error: a composed sample does not verify: {verdict.reasons()}"
                )
            self.reused += sum(1 for i in chosen if i in self.used)
            self.used.update(chosen)
            return sample, records
        return None


def chat_prompt(template: Template, sample: Sample) -> str:
    """The prompt as a chat model sees it, up to where the assistant's answer begins."""
    text = template.render(sample.instruction, "", sample.system)
    if template.suffix:
        text = text[: -len(template.suffix)]
    # FastChat ends a generation prompt at "ASSISTANT:"; the answer's first token holds the space
    return text.rstrip(" ")


def make_eval(
    records: Sequence[Record],
    n: int,
    *,
    seed: int = 42,
    max_instructions: int = 10,
    template: str | Template = "vicuna",
    max_tokens: int = 2048,
    pack: RulePack | None = None,
    tokenizer: Tokenizer | None = None,
) -> EvalSet:
    """Compose ``n`` verifiable evaluation items from ``records``, balanced over the cells."""
    if not records:
        raise ValueError("no records to compose an evaluation set from")
    cells = allocate(n, max_instructions, seed)
    tmpl = template if isinstance(template, Template) else get_template(template)
    tokenizer = tokenizer or load_tokenizer()
    # as in training: no tag, label or phrasing holding the tokenizer's or template's controls
    pack = (pack or load_rule_pack()).avoiding(run_special_strings(tokenizer, tmpl))
    left_out: Counter[str] = Counter()
    usable = []
    for record in records:
        why = absent_referent(record)
        if why is None:
            usable.append(record)
        else:
            left_out[why] += 1
    if not usable:
        raise ValueError("every record refers to something its prompt does not hold")
    drawer = _Drawer(usable, pack, tmpl, tokenizer, max_tokens, seed)
    made: list[tuple[Sample, list[Record]]] = []
    notes = []
    for cell in cells:
        for j in range(cell.asked):
            drawn = drawer.draw(cell, j)
            if drawn is None:
                why = (
                    f"the input has no {cell.k} records with one system prompt"
                    if cell.k > drawer.largest_group
                    else f"no draw of records in {MAX_ATTEMPTS} applied the rule within the budget"
                )
                notes.append(
                    f"{cell.name} with k={cell.k}: made {cell.made} of {cell.asked} ({why})"
                )
                break
            made.append(drawn)
            cell.made += 1
    if left_out:
        counts = ", ".join(f"{why} {count}" for why, count in left_out.most_common())
        notes.append(
            f"left out {sum(left_out.values())} record(s) whose prompt refers to "
            f"something it does not hold: {counts}"
        )
    if drawer.reused:
        notes.append(
            f"the pool ran out: {drawer.reused} record use(s) repeat a record used by an "
            f"earlier item ({len(drawer.used)} distinct records in {len(made)} items)"
        )
    Rng(seed, "eval", "order").shuffle(made)  # cells interleaved: a partial run stays balanced
    width = len(str(len(made)))
    items = []
    for i, (sample, chosen) in enumerate(made, start=1):
        item: dict[str, Any] = {
            "id": f"eval-{i:0{width}d}",
            "prompt": sample.instruction,
            "reference": sample.output,
            "references": [r.output for r in chosen],
            "mosaic": sample.spec.to_dict(),
        }
        if sample.system:
            item["system"] = sample.system
        if tmpl.name != "none":
            item["chat_prompt"] = chat_prompt(tmpl, sample)
        items.append(item)
    return EvalSet(
        items,
        cells,
        n,
        max_instructions,
        notes,
        dict(left_out),
        drawer.reused,
        dict(drawer.rejected),
    )
