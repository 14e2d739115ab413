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
- a source record is used once per set while unused ones can fill the item (an item takes
  used records only after half its draws of unused ones fail; every reuse is reported), and a
  record whose prompt refers to something the model cannot see (a link to an image or a file, a
  placeholder such as ``<Song>``, "the following text" with no text) is left out and counted.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from typing import Any

from mosaic_it.apps.eval_balance import Cell, EvalSet, allocate, check_counts
from mosaic_it.apps.eval_checks import (
    absent_referent,
    layout_is_checkable,
    margin_problem,
    with_input_note,
)
from mosaic_it.apps.prompt_formats import generation_prompt
from mosaic_it.budget.special import run_special_strings
from mosaic_it.budget.templates import Template, get_template
from mosaic_it.budget.tokenizer import Tokenizer, load_tokenizer
from mosaic_it.errors import InputError, InternalError, OptionError
from mosaic_it.limits import bound
from mosaic_it.method.compose import LayoutError, SamplePlan, compose, plan_sample
from mosaic_it.method.layout import PLAIN, Layout, label_styles
from mosaic_it.method.pack import RulePack
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.method.strategies import format as layout_only
from mosaic_it.method.system_groups import system_groups
from mosaic_it.records import Numbering, Record, Sample
from mosaic_it.rng import Rng
from mosaic_it.verifier.checks import verify

__all__ = ["make_eval"]

MAX_ATTEMPTS = 2000  # draws tried for one item before its cell is reported short
SHORTEST = 4096  # records counted to find the smallest item (the shortest by characters)
# tokens a seam between texts may save when they are joined (a label and the text after it):
# a cell is not drawn, or a budget refused, only when its smallest item is over the budget
# by more than this per instruction
SEAM_SLACK = 2


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
        groups = system_groups(records)
        self.groups = groups
        self.group_of = [groups[r.system] for r in records]
        self.largest_group = max(len(g) for g in groups.values())
        self.used: set[int] = set()
        self.reused = 0  # records of kept items that an earlier item had used
        # of those, the ones taken while enough unused records remained (none of them fit)
        self.reused_unfit = 0
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
            try:
                sample = compose(self.pack, plan, records, 0, template=self.template.name)
            except LayoutError:
                self.rejected["no layout reads unambiguously"] += 1
                continue
            if (sample.spec.strategy, sample.spec.rule) != (cell.strategy, cell.rule):
                continue  # the rule did not apply to these records, or another one was drawn
            # the layout fitted to the records (another label style or tag pair than the
            # plan's, or numbers for an unnumbered plan) must show the constraint too
            if not layout_is_checkable(cell.strategy, sample.layout):
                self.rejected["the fitted layout does not show the constraint"] += 1
                continue
            problem = margin_problem(sample.spec, records)
            if problem is not None:
                given = "the order given" in problem
                self.rejected["the order as given" if given else "too close to call"] += 1
                continue
            sample = with_input_note(sample, records)
            tokens = self.template.count(
                self.tokenizer, sample.instruction, sample.output, sample.system
            )
            if tokens > self.max_tokens:
                continue
            sample.spec.tokens = tokens
            verdict = verify(sample.spec, sample.output, prompt=sample.instruction, pack=self.pack)
            if not verdict.passed:  # the engine's own answer must verify: a bug if not
                raise InternalError(
                    f"a composed {cell.name} sample of records {[r.id for r in records]} "
                    f"does not verify: {verdict.reasons()}"
                )
            repeats = sum(1 for i in chosen if i in self.used)
            self.reused += repeats
            if len(fresh) >= cell.k:
                self.reused_unfit += repeats
            self.used.update(chosen)
            return sample, records
        return None


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
    strategies: tuple[str, ...] | None = None,
) -> EvalSet:
    """Compose ``n`` verifiable evaluation items from ``records``, balanced over the cells (of
    every strategy, or of ``strategies``)."""
    check_composition(n, max_instructions, max_tokens, seed)
    if not records:
        raise InputError("no records to compose an evaluation set from")
    cells = allocate(n, max_instructions, seed, strategies)
    tmpl = template if isinstance(template, Template) else get_template(template)
    tokenizer = tokenizer or load_tokenizer()
    # as in training: no tag, label or phrasing holding the tokenizer's or template's controls
    pack = (pack or load_rule_pack()).avoiding(run_special_strings(tokenizer, tmpl))
    usable, left_out = usable_records(records)
    # a budget no item fits is refused before any draw; a cell whose k no item fits is not drawn
    smallest = smallest_items(usable, pack, tmpl, tokenizer, max_instructions, max_tokens)
    # the fewest instructions no item fits (an item of more is no smaller), if any
    too_many = next(
        (k for k, tokens in smallest.items() if tokens - SEAM_SLACK * k > max_tokens), None
    )
    if too_many == 2:
        raise OptionError(
            f"max_tokens: {max_tokens} is too small for any item of these records: the "
            f"smallest (2 of the shortest records, numbered, no meta-instruction, template "
            f"{tmpl.name}) counts {smallest[2]} tokens; give at least {smallest[2]}"
        )
    drawer = _Drawer(usable, pack, tmpl, tokenizer, max_tokens, seed)
    made: list[tuple[Sample, list[Record]]] = []
    notes = []
    for cell in cells:
        if too_many is not None and cell.k >= too_many and cell.asked:
            notes.append(
                f"{cell.name} with k={cell.k}: made 0 of {cell.asked} (the smallest item of "
                f"{too_many} of these records counts {smallest[too_many]} tokens, over the "
                f"budget of {max_tokens})"
            )
            continue
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
        reasons = ["the pool ran out"] if drawer.reused > drawer.reused_unfit else []
        if drawer.reused_unfit:
            reasons.append(
                f"{drawer.reused_unfit} while unused records remained, none of which fit the "
                f"item's cell in {MAX_ATTEMPTS // 2} draws"
            )
        notes.append(
            f"{drawer.reused} record use(s) repeat a record used by an earlier item "
            f"({'; '.join(reasons)}; {len(drawer.used)} distinct records in {len(made)} items)"
        )
    Rng(seed, "eval", "order").shuffle(made)  # cells interleaved: a partial run stays balanced
    return EvalSet(
        eval_items(made, tmpl if tmpl.name != "none" else None),
        cells,
        n,
        max_instructions,
        notes,
        dict(left_out),
        drawer.reused,
        dict(drawer.rejected),
    )


def check_composition(n: int, max_instructions: int, max_tokens: int, seed: int) -> None:
    """Refuse, before any work, options no composition can satisfy (the command line calls this
    before reading its input; :func:`make_eval` again)."""
    check_counts(n, max_instructions)
    bound("max_tokens", max_tokens, at_least=1, whole=True)
    bound("seed", seed, whole=True)


def smallest_items(
    records: Sequence[Record],
    pack: RulePack,
    template: Template,
    tokenizer: Tokenizer,
    max_k: int,
    budget: int,
) -> dict[int, int]:
    """For k = 2, 3, ...: the tokens of the smallest item of k of these records: the k that
    count fewest alone (among one system prompt's), numbered with the label style that costs
    least, with no meta-instruction or tags. Stops after the first k whose item exceeds
    ``budget`` (an item of more instructions is no smaller). The records counted are the
    :data:`SHORTEST` shortest by characters (all of a small input)."""
    pool = heapq.nsmallest(SHORTEST, records, key=lambda r: len(r.prompt) + len(r.output))
    alone = template.count_batch(tokenizer, [(r.prompt, r.output, r.system) for r in pool])
    by_system: dict[str, list[tuple[int, Record]]] = {}
    for count, record in sorted(zip(alone, pool, strict=True), key=lambda pair: pair[0]):
        by_system.setdefault(record.system, []).append((count, record))
    layouts = [smallest_layout(pack, label, punct) for label, punct in label_styles(pack)]
    plan = SamplePlan(("smallest",), layouts[0], layout_only.NAME)
    smallest: dict[int, int] = {}
    for k in range(2, max_k + 1):
        groups = [[r for _, r in g[:k]] for g in by_system.values() if len(g) >= k]
        if not groups:
            break
        # every label style and the 8 groups whose records count fewest for 2 instructions;
        # the cheapest style and group for more (one count a k: under a second for k = 100)
        tried, groups = (layouts, groups[:8]) if k == 2 else (layouts[:1], groups[:1])
        counts = []
        for group in groups:
            for layout in tried:
                sample = compose(pack, plan, group, 0, layout=layout, template=template.name)
                counts.append(
                    (
                        template.count(tokenizer, sample.instruction, sample.output, sample.system),
                        layout,
                    )
                )
        smallest[k], best = min(counts, key=lambda pair: pair[0])
        layouts = [best]
        if smallest[k] - SEAM_SLACK * k > budget:
            break
    return smallest


def smallest_layout(pack: RulePack, label: str, punctuation: str) -> Layout:
    """A numbered layout with no tags or meta-instruction and the shortest separators."""
    cfg = pack.layout
    return Layout(
        PLAIN,
        Numbering(label, punctuation, False),
        None,
        "",
        False,
        min(cfg["instruction_separators"], key=len),
        min(cfg["meta_separators"], key=len),
        cfg["response_separator"],
    )


def usable_records(records: Sequence[Record]) -> tuple[list[Record], Counter[str]]:
    """The records an item may use, and the others counted by what they refer to."""
    left_out: Counter[str] = Counter()
    usable = []
    for record in records:
        why = absent_referent(record)
        if why is None:
            usable.append(record)
        else:
            left_out[why] += 1
    if not usable:
        raise InputError("every record refers to something its prompt does not hold")
    return usable, left_out


def eval_items(
    made: list[tuple[Sample, list[Record]]], template: Template | None
) -> list[dict[str, Any]]:
    """The JSONL rows of the items, numbered in order; ``chat_prompt`` unless ``template`` is
    None (template none)."""
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
        if template is not None:
            item["chat_prompt"] = generation_prompt(template, sample.instruction, sample.system)
        items.append(item)
    return items
