"""Grouping: epochs, wrap modes and the exact token budget.

Each epoch shuffles every admitted record (see :mod:`.admission`) and walks the shuffled order.
A sample is offered k records (the wrap mode) and grows one record at a time while its
*rendered training sequence* (template, BOS/EOS, labels, tags and meta-instructions included)
fits the budget; the first record that does not fit starts the next sample. Every admitted
record thus appears exactly once per epoch.

Fitting is decided on token counts, not on text: a candidate whose bounds (see :mod:`.bounds`)
are clearly inside (or outside) the budget is decided without counting it exactly; one near the
edge is composed and counted exactly (see :mod:`mosaic_it.engine.sample_count`). Samples decided
on bounds alone are counted in batches, and if a margin ever proves too small the samples from
that point on are rebuilt with exact counts throughout.

Either way every sample's count is exact and none exceeds the budget, whatever the tokenizer.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from mosaic_it.budget.templates import Template
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.engine.admission import Admission, GroupingStats
from mosaic_it.engine.bounds import SEAM_MARGIN, Counts, TokenBounds, pack_texts
from mosaic_it.engine.sample_count import SampleCounter
from mosaic_it.method.compose import SamplePlan, compose, plan_sample, sample_layout
from mosaic_it.method.fitting import layout_fits
from mosaic_it.method.layout import Layout, plain_layout
from mosaic_it.method.pack import RulePack
from mosaic_it.method.sizing import draw_k
from mosaic_it.records import Record, Sample, Tags
from mosaic_it.rng import Rng

BATCH_SAMPLES = 256  # samples counted exactly together


@dataclass
class _Built:
    sample: Sample
    start: int  # position in the epoch order of its first record
    number: int  # sample number within the epoch
    exact: int | None  # exact token count when already known
    group: Sequence[int]  # the numbers of its records


class Grouper:
    """Builds the samples of one run from records whose token counts are known.

    Its pieces: :attr:`bounds` (token bookkeeping), :attr:`counter` (exact sample counts),
    :attr:`admission` (which records can be mosaicked at all); it groups.
    """

    def __init__(
        self,
        records: Sequence[Record],
        counts: Counts,
        *,
        pack: RulePack,
        tokenizer: Tokenizer,
        template: Template,
        strategies: tuple[str, ...],
        wrap_mode: str,
        max_instructions: int,
        max_tokens: int,
        seed: int,
    ) -> None:
        self.records = records
        self.counts = counts
        self.pack = pack
        self.template = template
        self.strategies = strategies
        self.wrap_mode = wrap_mode
        self.max_instructions = max_instructions
        # the reference's count must stay strictly below its budget
        self.budget = max_tokens - 1 if template.strict else max_tokens
        self.seed = seed
        self.stats = GroupingStats()
        self.late_rejects: list[int] = []  # records admitted on bounds, too long counted exactly
        self.systems: Sequence[int] | None = None  # system-prompt number per record, if several
        self.bounds = TokenBounds(counts, pack=pack, tokenizer=tokenizer, template=template)
        self.counter = SampleCounter(tokenizer, template, pack_texts(pack))
        self.admission = Admission(
            self.bounds, self.counter, self.stats, pack=pack, budget=self.budget
        )
        self.facts = self.admission.facts  # what each admitted record rules out for layouts
        self._plain = plain_layout(pack)
        self._ends: array | None = None

    def spool(self, records: Sequence[Record]) -> None:
        """Read records from ``records`` (spooled to disk) from now on, and keep their
        summaries compact too: the run's memory then no longer grows with its text."""
        self.records = records
        self.counter.compact()

    def mark(self) -> tuple[GroupingStats, int]:
        """Where the counters stand now (see :meth:`take_since`)."""
        return replace(self.stats), len(self.late_rejects)

    def take_since(self, mark: tuple[GroupingStats, int]) -> tuple[GroupingStats, list[int]]:
        """The counters and late rejects gathered since ``mark`` (an epoch's), taken out: what
        is left is as it was at the mark, so whoever receives them adds them once."""
        stats, seen = mark
        gathered = replace(self.stats)
        gathered.add(stats, -1)
        self.stats.add(gathered, -1)
        late = self.late_rejects[seen:]
        del self.late_rejects[seen:]
        return gathered, late

    def epoch_order(self, admitted: Sequence[int], epoch: int) -> tuple[array, array | None]:
        """The shuffled order of an epoch, and where each system-prompt partition ends.

        Records with different system prompts never share a sample: the shuffled order is
        stably sorted by system prompt, and a sample never grows past its partition's end.
        Both are arrays: 4 bytes a record, where a list of ints takes 36.
        """
        order = array("i", admitted)
        Rng(self.seed, "epoch", epoch, "shuffle").shuffle(order)
        systems = self.systems
        if systems is None:
            return order, None
        order = array("i", sorted(order, key=systems.__getitem__))
        ends = array("i", bytes(4 * len(order)))
        end = len(order)
        for p in range(len(order) - 2, -1, -1):
            if systems[order[p]] != systems[order[p + 1]]:
                end = p + 1
            ends[p] = end
        if order:
            ends[-1] = len(order)
        return order, ends

    def group_epoch(self, admitted: Sequence[int], epoch: int) -> Iterator[Sample]:
        """The samples of one epoch, in order, each with its exact count."""
        order, self._ends = self.epoch_order(admitted, epoch)
        self.facts.cover(len(self.records))
        pos, number, exact_until = 0, 0, -1
        while pos < len(order):
            built: list[_Built] = []
            p, s = pos, number
            while len(built) < BATCH_SAMPLES and p < len(order):
                b, p = self._build(order, p, s, epoch, exact=s <= exact_until)
                if b is not None:
                    built.append(b)
                    s += 1
            self._count_exactly([b for b in built if b.exact is None])
            for b in built:
                assert b.exact is not None  # _count_exactly counted those without a count
                if b.exact > self.budget:
                    # a seam moved more than the margin: rebuild from here with exact counts
                    self.stats.margin_misses += 1
                    pos, number = b.start, b.number
                    exact_until = number + BATCH_SAMPLES
                    break
                b.sample.spec.tokens = b.exact
                yield b.sample
            else:
                pos, number = p, s

    def _count_exactly(self, built: list[_Built]) -> None:
        """Exact counts of many samples built on bounds alone, in one go."""
        if not built:
            return
        self.stats.exact_checks += len(built)
        counts = self.counter.exact_many([(b.sample, b.group) for b in built])
        for b, n in zip(built, counts):
            b.exact = n

    def _exact(self, sample: Sample, group: Sequence[int]) -> int:
        self.stats.exact_checks += 1
        return self.counter.exact(sample, group)

    def _build(
        self, order: Sequence[int], pos: int, number: int, epoch: int, exact: bool
    ) -> tuple[_Built | None, int]:
        """Grow one sample from ``order[pos]`` on; returns it and the next position."""
        path = (self.seed, "epoch", epoch, "sample", number)
        rng = Rng(*path, "plan")  # the size first, then layout and strategy
        k = draw_k(rng, self.wrap_mode, self.max_instructions)
        plan = plan_sample(self.pack, self.strategies, path, rng)
        end = min(len(order) if self._ends is None else self._ends[pos], pos + k)
        candidates = order[pos:end]
        records = list(map(self.records.__getitem__, candidates))
        j, sample, n, fitted = self._grow(plan, candidates, records, epoch, exact)
        if j == 0:
            # the first record does not fit with this sample's layout: use the smallest layout
            self.stats.plain_fallbacks += 1
            sample = self._compose(plan, records[:1], epoch, layout=self._plain)
            n = self._exact(sample, candidates[:1]) if exact else None
            if n is not None and n > self.budget:
                # admitted on bounds, but too long once counted exactly: report, never loop
                self.late_rejects.append(candidates[0])
                return None, pos + 1
            return _Built(sample, pos, number, n, candidates[:1]), pos + 1
        if sample is None:
            sample = self._compose(plan, records[:j], epoch, fitted=fitted)
        if plan.strategy != "format" and j > 1 and sample.spec.strategy == "format":
            self.stats.rule_fallbacks += 1
        return _Built(sample, pos, number, n, candidates[:j]), pos + j

    def _grow(
        self,
        plan: SamplePlan,
        candidates: Sequence[int],
        records: list[Record],
        epoch: int,
        exact: bool,
    ) -> tuple[int, Sample | None, int | None, Layout | None]:
        """How many of the candidates fit one sample, with the sample and its count when they
        were needed to tell (near the budget's edge, or in ``exact`` mode), and its layout.

        Bounds on the rendered count grow one record at a time; the layout may change as
        records come (a record whose text a label style or tag would make ambiguous), and the
        bounds are then summed again for the new layout. One loop over the hot path of the
        engine, kept whole (about 60 lines) so that its running sums stay in local names.

        The layout kept for the first j records is the one :func:`sample_layout` gives for
        them: fitting is a test of each text on its own, so a layout found for fewer records
        that also fits the next is still the first that fits in the plan's seeded order, and
        composing needs not fit it again.
        """
        bounds, budget = self.bounds, self.budget
        prompt_counts, output_counts = self.counts.prompt, self.counts.output
        codes, kinds = self.facts.codes, self.facts.kinds
        rule_meta = bounds.rule_meta_max if plan.strategy != "format" else 0
        maskout = plan.strategy == "maskout"
        system = records[0].system
        layout = plan.layout
        k = len(candidates)
        fixed, per_item, slack, labels = self._costs(layout, system, k)
        need_one, need_many, test_texts, tags, begin, end = self._needs(layout)
        known = fixed  # everything but the answers
        answers = j = 0
        best: tuple[Sample | None, int | None] = (None, None)
        fitted: Layout | None = None  # the layout of the first j records
        for j, i in enumerate(candidates, start=1):
            record = records[j - 1]
            # the record's noted facts tell labels and blank lines; tags are looked for in its
            # texts; where either may rule the layout out, the layout is tested on the texts
            facts = kinds[codes[i]]
            if j == 2:  # the first record is now one of several
                facts |= kinds[codes[candidates[0]]]
            clash = facts & (need_many if j > 1 else need_one)
            if tags is not None and not clash:
                prompt, output = record.prompt, record.output
                clash = begin in prompt or end in prompt or begin in output or end in output
            if (clash or test_texts) and (
                not layout_fits(layout, [record.prompt], [record.output], many=j > 1)
                or (j == 2 and not layout_fits(layout, [records[0].prompt], [], many=True))
            ):
                new_layout = sample_layout(self.pack, plan, records[:j])
                if new_layout is None:
                    j -= 1  # no layout of the pack reads unambiguously with this record
                    break
                layout = new_layout
                fixed, per_item, slack, labels = self._costs(layout, system, k)
                need_one, need_many, test_texts, tags, begin, end = self._needs(layout)
                known = fixed + sum(
                    bounds.item_cost(layout, per_item, n, g)
                    for n, g in enumerate(candidates[: j - 1], start=1)
                )
            if j < len(labels):
                known += per_item + labels[j] + prompt_counts[i]
            else:
                known += bounds.item_cost(layout, per_item, j, i)
            answers += output_counts[i]
            high = known + answers + (rule_meta + 3 * j if rule_meta else 0)
            if not exact and high <= budget:
                best, fitted = (None, None), layout
                continue
            low = known - slack - 2 * SEAM_MARGIN * (4 * j + 4) + (0 if maskout else answers)
            if not exact and low > budget:
                j -= 1
                break
            sample = self._compose(plan, records[:j], epoch, fitted=layout)
            n = self._exact(sample, candidates[:j])
            if n > budget:
                j -= 1
                break
            best, fitted = (sample, n), layout
        return j, *best, fitted

    def _costs(self, layout: Layout, system: str, k: int) -> tuple[int, int, int, list[int]]:
        """What ``layout`` adds to a sample of up to k records (see ``TokenBounds``)."""
        return (
            *self.bounds.layout_costs(layout, system),
            self.bounds.label_costs(layout.numbering, k),
        )

    def _needs(self, layout: Layout) -> tuple[int, int, bool, Tags | None, str, str]:
        """The facts that rule ``layout`` out (see ``FitFacts.needs``), and its tags."""
        tags = layout.tags
        begin, end = (tags.begin, tags.end) if tags is not None else ("", "")
        return *self.facts.needs(layout), tags, begin, end

    def _compose(
        self,
        plan: SamplePlan,
        records: list[Record],
        epoch: int,
        layout: Layout | None = None,
        fitted: Layout | None = None,
    ) -> Sample:
        return compose(
            self.pack,
            plan,
            records,
            epoch,
            layout=layout,
            template=self.template.name,
            fitted=fitted,
        )
