"""Compose one mosaic sample from a group of records: choose its rules, render its text.

Knows text and rules, not tokenizers. Every random draw comes from generators seeded by the
sample's path (seed, epoch, sample number), so composing the same group twice gives the same
sample, and growing a group by one record keeps the layout drawn for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .records import MosaicSpec, Record, Sample
from .rng import Rng
from .rulepack import RulePack
from .strategies import Item, RuleChoice, maskout, permute
from .strategies.format import Layout, choose_layout, render_instruction, render_response

RULE_STRATEGIES = {"permute": permute, "maskout": maskout}


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


def choose_rule(pack: RulePack, plan: SamplePlan, records: list[Record]) -> RuleChoice | None:
    """The permute/maskout rule for these records, or None (format only)."""
    module = RULE_STRATEGIES.get(plan.strategy)
    if module is None or len(records) < 2:
        return None  # a single instruction gets the format layer only
    items = [Item(i, r.prompt) for i, r in enumerate(records, start=1)]
    return module.choose(Rng(*plan.path, "rule"), pack, items, plan.layout.numbering is not None)


def compose(
    pack: RulePack,
    plan: SamplePlan,
    records: list[Record],
    epoch: int,
    *,
    layout: Layout | None = None,
    template: str = "vicuna",
) -> Sample:
    """Render the sample for ``records`` under ``plan`` (``layout`` overrides the plan's)."""
    layout = layout or plan.layout
    choice = choose_rule(pack, plan, records) if layout is plan.layout else None
    meta = " ".join(part for part in (layout.meta, choice.meta if choice else "") if part)
    order = choice.answer_order if choice else list(range(1, len(records) + 1))
    instruction = render_instruction(layout, [r.prompt for r in records], meta)
    response = render_response(layout, [r.output for r in records], order)
    spec = MosaicSpec(
        sources=[r.id for r in records],
        epoch=epoch,
        strategy=choice.strategy if choice else "format",
        rule=choice.rule if choice else None,
        format=layout.kind,
        numbering=layout.numbering,
        tags=layout.tags,
        meta=meta,
        meta_position=("after" if layout.meta_after else "before") if meta else None,
        answer_order=order,
        masked=choice.masked if choice else [],
        rule_params=choice.params if choice else {},
        template=template,
        rule_pack=pack.id,
    )
    return Sample(instruction, response, spec, records[0].system)
