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

from collections import Counter
from collections.abc import Sequence
from typing import Any

from mosaic_it.apps.eval_balance import Cell, EvalSet, allocate, rule_name
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
from mosaic_it.method.compose import compose, plan_sample
from mosaic_it.method.rulepack import RulePack, load_rule_pack
from mosaic_it.method.system_groups import system_groups
from mosaic_it.records import Record, Sample
from mosaic_it.rng import Rng
from mosaic_it.verifier.checks import verify

# the balance and the checks of an item live in eval_balance and eval_checks; these names stay
# importable from here
__all__ = ["Cell", "EvalSet", "make_eval", "rule_name"]

MAX_ATTEMPTS = 2000  # draws tried for one item before its cell is reported short


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
            sample = with_input_note(sample, sample.layout, records)
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
    usable, left_out = usable_records(records)
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
        raise ValueError("every record refers to something its prompt does not hold")
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
