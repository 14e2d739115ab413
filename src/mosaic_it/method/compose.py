"""Compose one mosaic sample from a group of records: choose its rules, render its text.

Knows text and rules, not tokenizers. Every random draw comes from generators seeded by the
sample's path (seed, epoch, sample number), so composing the same group twice gives the same
sample, and growing a group by one record keeps the layout drawn for it unless the new record
rules it out (see :func:`~.fitting.fit_layout`). The rule comes from the sample's strategy, found
in the registry of strategies (:mod:`.strategies.base`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mosaic_it.errors import InputError
from mosaic_it.method.fitting import fit_layout
from mosaic_it.method.layout import (
    Layout,
    choose_layout,
    instruction_parts,
    place_meta,
    response_parts,
)
from mosaic_it.method.metalike import meta_like
from mosaic_it.method.pack import RulePack
from mosaic_it.method.strategies import format as layout_only
from mosaic_it.method.strategies.base import Item, Passed, RuleChoice, find_strategy
from mosaic_it.records import MosaicSpec, Record, Sample
from mosaic_it.rng import Rng


class LayoutError(InputError):
    """No label style or tag pair of the rule pack can be read unambiguously around a group."""


# a sample's instruction or response as a list of parts: a text the layout writes, or the
# number of a record in the sample's group (0-based) where that record's text goes
Parts = list[str | int]


@dataclass(slots=True)
class SampleParts:
    """How a sample's instruction and response are laid out around its records' texts (the
    prompts in the instruction, the outputs in the response): rendering puts the texts in,
    and counting folds the same parts from the texts' summaries, without laying them out
    again. ``*_at``: where in the list a record's number stands."""

    instruction: Parts
    instruction_at: list[int]
    response: Parts
    response_at: list[int]


def sample_parts(
    layout: Layout, records: int, head: str, tail: str, answer_order: list[int]
) -> SampleParts:
    """The parts of a sample of ``records`` records (see :class:`SampleParts`), with
    meta-instruction text ``head`` before the instructions and ``tail`` after them."""
    numbers = range(records)
    instruction_at: list[int] = []
    response_at: list[int] = []
    return SampleParts(
        instruction_parts(layout, numbers, head, tail, instruction_at),
        instruction_at,
        response_parts(layout, numbers, answer_order, response_at),
        response_at,
    )


def render_parts(parts: Parts, at: list[int], texts: list[str]) -> str:
    """The text of ``parts``, with ``texts[n]`` where record number n stands (at ``at``)."""
    written: list[Any] = parts.copy()  # the numbers at ``at`` become texts
    for j in at:
        written[j] = texts[written[j]]
    return "".join(written)


@dataclass(frozen=True, slots=True)
class SamplePlan:
    """What is drawn for a sample before its records are known: layout and strategy."""

    path: tuple[object, ...]
    layout: Layout
    strategy: str


def plan_sample(
    pack: RulePack, strategies: tuple[str, ...], path: tuple[object, ...], rng: Rng | None = None
) -> SamplePlan:
    """Draw a sample's layout and strategy, from ``rng`` (by default the path's "layout"
    stream; the engine passes the stream it drew the sample's size from: one seeding less)."""
    rng = rng or Rng(*path, "layout")
    layout = choose_layout(rng, pack)
    return SamplePlan(path, layout, rng.choice(strategies))


def sample_layout(pack: RulePack, plan: SamplePlan, records: list[Record]) -> Layout | None:
    """The plan's layout, or the nearest one a reader can read unambiguously around these
    records' texts; None when the pack has none."""
    return fit_layout(
        pack,
        plan.layout,
        lambda: Rng(*plan.path, "fit"),
        [r.prompt for r in records],
        [r.output for r in records],
    )


def choose_rule(
    pack: RulePack,
    plan: SamplePlan,
    records: list[Record],
    numbered: bool | None = None,
    passed: list[Passed] | None = None,
) -> RuleChoice | None:
    """The rule the plan's strategy draws for these records, or None (a layout only).
    ``numbered``: whether the sample's layout numbers its instructions (by default, whether the
    plan's does)."""
    strategy = find_strategy(plan.strategy)
    if strategy is None or strategy.choose is None or len(records) < 2:
        return None  # a single instruction gets its layout only
    if any(meta_like(pack)(r.prompt) for r in records):
        # an instruction that reads as a meta-instruction is never set beside a rule's
        if passed is not None:
            passed.append(Passed("", "meta_like"))
        return None
    if numbered is None:
        numbered = plan.layout.numbering is not None
    items = [Item(i, r.prompt) for i, r in enumerate(records, start=1)]
    rng = Rng(*plan.path, "rule")
    choice = strategy.choose(rng, pack, items, numbered, passed)
    if (
        choice is not None
        and choice.rule in strategy.measured
        and any("\n" in r.prompt for r in records)
    ):
        # the length counts everything written for an instruction: where an instruction runs
        # over several lines (an input, or lines of its own), say that all of them count
        note = rng.choice(pack.data["input_counts"])
        choice = RuleChoice(
            choice.strategy,
            choice.rule,
            f"{choice.meta} {note}",
            choice.answer_order,
            choice.masked,
            choice.params,
        )
    return choice


def compose(
    pack: RulePack,
    plan: SamplePlan,
    records: list[Record],
    epoch: int,
    *,
    layout: Layout | None = None,
    template: str = "vicuna",
    fitted: Layout | None = None,
) -> Sample:
    """Render the sample for ``records`` under ``plan`` (``layout`` overrides the plan's, and
    then no rule is drawn). :class:`LayoutError` when no layout of the pack fits the texts.
    ``fitted``: what :func:`sample_layout` gives for these records, when the caller knows it
    already (grouping fits the layout record by record as a sample grows)."""
    choice = None
    passed: list[Passed] = []
    if layout is None:
        layout = fitted if fitted is not None else sample_layout(pack, plan, records)
        if layout is None:
            raise LayoutError(
                f"no label style or tag pair of rule pack {pack.id} can be read "
                f"unambiguously around records {[r.id for r in records]}"
            )
        choice = choose_rule(pack, plan, records, layout.numbering is not None, passed)
    head, tail = place_meta(layout, choice.meta if choice else "")
    meta = " ".join(part for part in (head, tail) if part)
    order = choice.answer_order if choice else list(range(1, len(records) + 1))
    parts = sample_parts(layout, len(records), head, tail, order)
    instruction = render_parts(parts.instruction, parts.instruction_at, [r.prompt for r in records])
    response = render_parts(parts.response, parts.response_at, [r.output for r in records])
    spec = MosaicSpec(
        sources=[r.id for r in records],
        epoch=epoch,
        strategy=choice.strategy if choice else layout_only.NAME,
        rule=choice.rule if choice else None,
        layout_kind=layout.kind,
        numbering=layout.numbering,
        tags=layout.tags,
        meta=meta,
        meta_position=("both" if tail else "before") if head else ("after" if tail else None),
        answer_order=order,
        masked=choice.masked if choice else [],
        rule_params=choice.params if choice else {},
        template=template,
        rule_pack=pack.id,
        meta_tail=tail if head and tail else "",
    )
    replaced = None
    if passed:
        rule = f"{plan.strategy}.{passed[0].rule}" if passed[0].rule else plan.strategy
        replaced = f"{rule}: {passed[0].reason}"
    return Sample(instruction, response, spec, records[0].system, layout, parts, replaced)
