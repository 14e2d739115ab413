"""A held-out evaluation set of mosaic prompts whose answers can be verified.

``mosaic-it make-eval INPUT OUTPUT --n N`` composes prompts from held-out records with the same
engine pieces as training data (:func:`compose.plan_sample`, :func:`compose.compose`, seeded
generators), keeping only configurations a response can be checked against, and balances them:
every (strategy/rule, instruction count) cell gets an equal share of the N items.

Which layouts are kept: a Permute item is numbered (the order shows only in the labels); a
Maskout item is numbered and tagged (with labels alone, an answer to a skipped instruction that
follows another answer reads as part of that answer); a Format item is numbered or tagged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compose import compose, plan_sample
from .io import InputError, read_records, write_json, write_records
from .outputs import Output, guard
from .records import Record, Sample
from .rng import Rng
from .rulepack import MASKOUT_RULES, PERMUTE_RULES, RulePack, load_rule_pack
from .special import run_special_strings
from .strategies import permute
from .strategies.format import Layout
from .templates import TEMPLATES, Template, get_template
from .tokenizer import Tokenizer, load_tokenizer
from .verify import verify

MAX_ATTEMPTS = 2000  # draws tried for one item before its cell is reported short


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
    if strategy == "maskout":
        return layout.numbering is not None and layout.tags is not None
    if strategy == "permute":
        return layout.numbering is not None
    return layout.numbering is not None or layout.tags is not None


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
            row = [grid.get((name, k)) for k in ks]  # None: no such cell (ODD_EVEN at k=2)
            made = sum(c.made for c in row if c)
            asked = sum(c.asked for c in row if c)
            counts = " ".join(f"{cell_text(c.made, c.asked) if c else '-':>6}" for c in row)
            lines.append(f"{name:{width}} {counts} {cell_text(made, asked):>7}")
        totals = [(sum(c.made for c in self.cells if c.k == k),
                   sum(c.asked for c in self.cells if c.k == k)) for k in ks]
        lines.append(f"{'total':{width}} " + " ".join(f"{cell_text(m, a):>6}" for m, a in totals)
                     + f" {cell_text(len(self.items), self.asked):>7}")
        return "\n".join(lines)


def allocate(
    n: int, max_instructions: int, seed: int, pack: RulePack | None = None
) -> list[Cell]:
    """An equal share of ``n`` for every cell; the remainder goes to cells drawn at random.
    Cells whose rule can only ask for the given order (ODD_EVEN with k = 2) are left out when
    the rule pack draws no identity orders."""
    if max_instructions < 2:
        raise ValueError("max_instructions: an evaluation mosaic has 2 instructions or more, "
                         f"got {max_instructions}")
    if n < 1:
        raise ValueError(f"n: must be at least 1, got {n}")
    identity = (pack or load_rule_pack()).permute["identity_orders"]
    cells = [Cell(s, r, k, 0) for s, r in eval_rules() for k in range(2, max_instructions + 1)
             if identity or s != "permute" or permute.can_differ(r, k)]
    base, extra = divmod(n, len(cells))
    lucky = list(range(len(cells)))
    Rng(seed, "eval", "remainder").shuffle(lucky)
    for cell in cells:
        cell.asked = base
    for i in lucky[:extra]:
        cells[i].asked += 1
    return cells


class _Drawer:
    """Draws one verifiable sample for a cell, redrawing layout and records until it fits."""

    def __init__(self, records: Sequence[Record], pack: RulePack, template: Template,
                 tokenizer: Tokenizer, max_tokens: int, seed: int) -> None:
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
        self.group_of = [groups[r.system] for r in records]
        self.largest_group = max(len(g) for g in groups.values())

    def draw(self, cell: Cell, j: int) -> Sample | None:
        if cell.k > self.largest_group:
            return None
        for attempt in range(MAX_ATTEMPTS):
            path = (self.seed, "eval", cell.name, cell.k, j, attempt)
            plan = plan_sample(self.pack, (cell.strategy,), path)
            if not layout_is_checkable(cell.strategy, plan.layout):
                continue
            rng = Rng(*path, "records")
            first = rng.below(len(self.records))
            group = self.group_of[first]
            if len(group) < cell.k:
                continue
            chosen = rng.sample(group, cell.k)
            records = [self.records[i] for i in chosen]
            sample = compose(self.pack, plan, records, 0, template=self.template.name)
            if (sample.spec.strategy, sample.spec.rule) != (cell.strategy, cell.rule):
                continue  # the rule did not apply to these records, or another one was drawn
            tokens = self.template.count(self.tokenizer, sample.instruction, sample.output,
                                         sample.system)
            if tokens > self.max_tokens:
                continue
            sample.spec.tokens = tokens
            verdict = verify(sample.spec, sample.output, instructions=[r.prompt for r in records],
                             pack=self.pack)
            if not verdict.passed:  # the engine's own answer must verify: a bug if not
                raise RuntimeError(f"internal error: a composed sample does not verify: "
                                   f"{verdict.reasons()}")
            return sample
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
    template: str = "vicuna",
    max_tokens: int = 2048,
    pack: RulePack | None = None,
    tokenizer: Tokenizer | None = None,
) -> EvalSet:
    """Compose ``n`` verifiable evaluation items from ``records``, balanced over the cells."""
    if not records:
        raise ValueError("no records to compose an evaluation set from")
    cells = allocate(n, max_instructions, seed, pack)
    tmpl = get_template(template)
    tokenizer = tokenizer or load_tokenizer()
    # as in training: no tag, label or phrasing holding the tokenizer's or template's controls
    pack = (pack or load_rule_pack()).avoiding(run_special_strings(tokenizer, tmpl))
    drawer = _Drawer(records, pack, tmpl, tokenizer, max_tokens, seed)
    made: list[Sample] = []
    notes = []
    for cell in cells:
        for j in range(cell.asked):
            sample = drawer.draw(cell, j)
            if sample is None:
                why = (f"the input has no {cell.k} records with one system prompt"
                       if cell.k > drawer.largest_group else
                       f"no draw of records in {MAX_ATTEMPTS} applied the rule within the budget")
                notes.append(
                    f"{cell.name} with k={cell.k}: made {cell.made} of {cell.asked} ({why})")
                break
            made.append(sample)
            cell.made += 1
    Rng(seed, "eval", "order").shuffle(made)  # cells interleaved: a partial run stays balanced
    width = len(str(len(made)))
    items = []
    for i, sample in enumerate(made, start=1):
        item: dict[str, Any] = {"id": f"eval-{i:0{width}d}", "prompt": sample.instruction,
                                "reference": sample.output, "mosaic": sample.spec.to_dict()}
        if sample.system:
            item["system"] = sample.system
        if template != "none":
            item["chat_prompt"] = chat_prompt(tmpl, sample)
        items.append(item)
    return EvalSet(items, cells, n, max_instructions, notes)


# ---------------------------------------------------------------------------- command line


def add_parser(sub: Any) -> Callable[[argparse.Namespace], int]:
    """Register the subcommand on ``sub`` (argparse subparsers); returns its handler."""
    p = sub.add_parser(
        "make-eval",
        help="compose a balanced, verifiable evaluation set of mosaic prompts",
        description="Compose a held-out evaluation set: prompts built only from verifiable "
        "layouts, balanced across strategies/rules and instruction counts 2..M. Each JSONL "
        "line: id, prompt, reference, mosaic (the spec) and, with a chat template, chat_prompt.",
    )
    p.add_argument("input", help="held-out Alpaca records, JSON list or JSONL (builtin:example)")
    p.add_argument("output", help="where to write the evaluation set (.jsonl or .json)")
    p.add_argument("--n", type=int, default=1000, help="items to make (default %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default %(default)s)")
    p.add_argument("--max-instructions", type=int, default=10,
                   help="largest instruction count M; items have 2..M (default %(default)s)")
    p.add_argument("--template", choices=list(TEMPLATES), default="vicuna",
                   help="chat template of chat_prompt and of the token budget; none: no "
                   "chat_prompt (default %(default)s)")
    p.add_argument("--max-tokens", type=int, default=2048,
                   help="largest rendered prompt + reference, in tokens (default %(default)s)")
    p.add_argument("--tokenizer", default=None, help="tokenizer for the budget (default: bundled)")
    p.add_argument("--rules", default=None, help="a rule pack JSON (default: the bundled one)")
    p.add_argument("--balance", metavar="FILE", help="write the balance table here as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(handler=run)
    return run


def run(args: argparse.Namespace) -> int:
    from .cli import EXAMPLE, example_path  # the command line's own input conventions

    source = example_path() if args.input == EXAMPLE else Path(args.input)
    with guard({"INPUT": source, "--rules": args.rules, "--tokenizer": args.tokenizer},
               [Output(args.output, "OUTPUT"), Output(args.balance, "--balance")]):
        return _make_eval(args, source)


def _make_eval(args: argparse.Namespace, source: Path) -> int:
    records = list(read_records(source))
    evalset = make_eval(
        records, args.n, seed=args.seed, max_instructions=args.max_instructions,
        template=args.template, max_tokens=args.max_tokens, pack=load_rule_pack(args.rules),
        tokenizer=load_tokenizer(args.tokenizer),
    )
    if not evalset.items:
        raise InputError(
            f"{source}: no evaluation item could be made from {len(records)} record(s) "
            f"({'; '.join(evalset.notes) or 'too few records, or none fits --max-tokens'}); "
            f"{args.output} was not written")
    write_records(args.output, evalset.items)
    if args.balance:
        write_json(args.balance, evalset.balance())
    for note in evalset.notes:
        print(f"mosaic-it: warning: {note}", file=sys.stderr)
    if not args.quiet:
        print(f"mosaic-it: wrote {len(evalset.items)} of {evalset.asked} evaluation items to "
              f"{args.output}", file=sys.stderr)
        print(evalset.render_balance(), file=sys.stderr)
    return 0
