"""The Python API: the same engine the command line runs, over any iterable of records."""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mosaic_it.budget.special import SPECIAL_TOKEN_MODES, SpecialFinder, run_special_strings
from mosaic_it.budget.templates import check_template, get_template
from mosaic_it.budget.tokenizer import Tokenizer, load_tokenizer
from mosaic_it.engine.admission import Reject
from mosaic_it.engine.bounds import Counts
from mosaic_it.engine.grouping import Grouper
from mosaic_it.engine.parallel import Screen, screened_batches
from mosaic_it.engine.store import (
    RECORD_OVERHEAD,
    SPOOL_THRESHOLD,
    DiskStore,
    SeenHashes,
    fewer_collections,
    release_freed_memory,
)
from mosaic_it.engine.summary import RunSummary
from mosaic_it.errors import InputError, OptionError
from mosaic_it.io.readers import InvalidRecord, record_from_alpaca
from mosaic_it.io.tables import batches
from mosaic_it.limits import MAX_MOSAIC_EPOCHS, bound
from mosaic_it.method.fitting import META_LIKE
from mosaic_it.method.pack import RulePack
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.method.sizing import WRAP_MODES
from mosaic_it.method.strategies import STRATEGIES
from mosaic_it.method.strategies.base import registered
from mosaic_it.records import Record, Sample

COUNT_BATCH = 2048  # records counted together (one job of a counting worker)


@dataclass(frozen=True)
class MosaicConfig:
    """Every option of a run. The same config, input and seed give the same output."""

    epochs: int = 4
    wrap_mode: str = "uniform"
    max_instructions: int = 10
    max_tokens: int = 2048
    template: str = "vicuna"
    tokenizer: str | None = None  # None: the bundled Llama-family 32k tokenizer
    strategies: tuple[str, ...] = STRATEGIES
    rules: str | None = None  # a rule pack file; None: the bundled one
    seed: int = 42
    # records holding a special token or a template control string: "skip" (left out, listed),
    # "keep" (mosaicked, counted) or "error" (stop the run)
    special_tokens: str = "skip"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise OptionError(f"{name}: {why}")

        bound(
            "epochs",
            self.epochs,
            at_least=1,
            at_most=MAX_MOSAIC_EPOCHS,
            whole=True,
            why="each epoch writes every record once more; the paper uses 4",
        )
        bound("max_instructions", self.max_instructions, at_least=1, whole=True)
        bound("max_tokens", self.max_tokens, at_least=1, whole=True)
        bound("seed", self.seed, whole=True)
        if self.wrap_mode not in WRAP_MODES:
            bad(
                "wrap_mode", f"unknown mode {self.wrap_mode!r}; choose from {', '.join(WRAP_MODES)}"
            )
        check_template(self.template, self.tokenizer)
        if self.special_tokens not in SPECIAL_TOKEN_MODES:
            bad(
                "special_tokens",
                f"unknown mode {self.special_tokens!r}; choose from "
                f"{', '.join(SPECIAL_TOKEN_MODES)}",
            )
        strategies = tuple(self.strategies)
        object.__setattr__(self, "strategies", strategies)
        if not strategies:
            bad("strategies", "name at least one of format, permute, maskout")
        for s in strategies:
            if s not in registered():
                bad("strategies", f"unknown strategy {s!r}; choose from {', '.join(registered())}")
        if len(set(strategies)) != len(strategies):
            bad("strategies", f"{'+'.join(strategies)} names a strategy twice")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategies"] = list(self.strategies)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MosaicConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise OptionError(f"unknown option(s): {', '.join(unknown)}")
        return cls(**d)


def _holds(index: int, record: Record, where: str, token: str) -> str:
    return (
        f"record {index} (id {record.id!r}): field {where!r} holds {token!r}, a special "
        "token or chat-control string"
    )


def _as_record(obj: Record | dict[str, Any], index: int) -> Record:
    if isinstance(obj, Record):
        return obj
    try:
        return record_from_alpaca(obj, index)
    except ValueError as exc:
        raise InputError(f"record {index}: {exc}") from None


@dataclass
class Prepared:
    """Records counted, stored and admitted: everything an epoch needs."""

    grouper: Grouper
    admitted: array
    summary: RunSummary
    positions: array = field(default_factory=lambda: array("i"))  # input position, by index


class _Intake:
    """What :meth:`Mosaicker.prepare` gathers batch by batch: the records stored (in memory,
    then spooled to disk past ``spool_threshold``: see :data:`.SPOOL_THRESHOLD`), their system
    prompts, and which are admitted."""

    def __init__(
        self,
        grouper: Grouper,
        summary: RunSummary,
        memory: list[Record],
        max_tokens: int,
        spool_threshold: int,
    ) -> None:
        self.grouper = grouper
        self.summary = summary
        self.memory = memory
        self.max_tokens = max_tokens
        self.spool_threshold = spool_threshold
        self.disk: DiskStore | None = None
        self.admitted = array("i")
        self.positions = array("i")  # input position of every stored record
        self.stored = self.held = 0  # records stored, what they cost (see SPOOL_THRESHOLD)
        self._seen_ids = SeenHashes()
        self._systems: dict[str, int] = {}
        self._system_of = array("i")

    def take(
        self,
        items: list[Record],
        counts: tuple[list[int], list[int]],
        facts: list[int],
    ) -> None:
        """Store a counted batch (its records' prompt and output counts, and their facts for
        layouts) and admit those of its records that can fit the budget."""
        prompt_counts, output_counts = counts
        kept = self.grouper.counts
        kept.prompt.extend(prompt_counts)
        kept.output.extend(output_counts)
        self.held += sum(len(r.instruction) + len(r.input) + len(r.output) for r in items)
        self.held += RECORD_OVERHEAD * len(items)
        if self.disk is None and self.held > self.spool_threshold:
            self.disk = DiskStore()
            self.disk.extend(self.memory)
            self.memory.clear()
            self.grouper.spool(self.disk)
            release_freed_memory()
        self.summary.duplicate_ids += self._seen_ids.add_many(hash(r.id) for r in items)
        for j, (r, f) in enumerate(zip(items, facts)):
            self._admit(self.stored + j, r, f)
        (self.disk if self.disk is not None else self.memory).extend(items)
        self.summary.tokens_in_records += sum(prompt_counts) + sum(output_counts)
        self.stored += len(items)

    def _admit(self, index: int, record: Record, facts: int) -> None:
        self._system_of.append(self._systems.setdefault(record.system, len(self._systems)))
        facts_of = self.grouper.admission.facts
        if facts & META_LIKE:
            self.summary.meta_like_records += 1
            if facts_of.unplaceable(facts):
                self.summary.rejected.append(
                    Reject(
                        self.positions[index],
                        record.id,
                        "meta_like",
                        "reads as a meta-instruction and no label style can number it",
                    ).to_dict()
                )
                return
        ok, tokens = self.grouper.admission.fits_alone(index, record, facts)
        if ok:
            self.admitted.append(index)
            return
        self.summary.rejected.append(
            Reject(
                self.positions[index],
                record.id,
                "too_long",
                f"needs {tokens} tokens alone, budget {self.max_tokens}",
                tokens,
            ).to_dict()
        )

    def finish(self) -> None:
        """Everything is stored: tell the grouper the system-prompt partitions, if several."""
        if self.disk is not None:
            self.disk.flush()
        self.grouper.systems = self._system_of if len(self._systems) > 1 else None


class Mosaicker:
    """Runs Mosaic-IT over records: ``for sample in Mosaicker(config).run(records): ...``.

    After (or during) a run, ``summary`` holds the counts and everything left out. For files
    (epochs on several processes, resuming an interrupted run, side files, locked outputs),
    run a :class:`~mosaic_it.executors.job.MosaicJob` instead: :func:`mosaic_it.mosaic_file`.
    """

    def __init__(
        self,
        config: MosaicConfig | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        rule_pack: RulePack | None = None,
        progress: bool = False,
        spool_threshold: int = SPOOL_THRESHOLD,
    ) -> None:
        self.config = config or MosaicConfig()
        self.tokenizer = tokenizer or load_tokenizer(self.config.tokenizer)
        self.template = get_template(self.config.template, self.config.tokenizer)
        # no tag, label or phrasing may hold this tokenizer's or template's control strings
        self.special = run_special_strings(self.tokenizer, self.template)
        self.pack = (rule_pack or load_rule_pack(self.config.rules)).avoiding(self.special)
        self.progress = progress
        self.spool_threshold = spool_threshold
        self.summary = RunSummary()

    # ------------------------------------------------------------------ stages

    def prepare(
        self,
        records: Iterable[Record | dict[str, Any]],
        invalid: list[InvalidRecord] | None = None,
        *,
        workers: int = 1,
    ) -> Prepared:
        """Read, count and store every record, and decide which can fit the budget at all.

        Records are consumed in batches: each batch is counted (on ``workers`` forked processes
        while the next batches are read, when more than one) and then stored (in memory, or
        spooled to disk once they would hold ``spool_threshold``: see :data:`.SPOOL_THRESHOLD`).
        """
        with fewer_collections():
            return self._prepare(records, invalid, workers)

    def _prepare(
        self,
        records: Iterable[Record | dict[str, Any]],
        invalid: list[InvalidRecord] | None,
        workers: int,
    ) -> Prepared:
        cfg = self.config
        summary = self.summary = RunSummary(
            wrap_mode=cfg.wrap_mode,
            max_tokens=cfg.max_tokens,
            epochs=cfg.epochs,
            tokenizer=self.tokenizer.name,
            template=self.template.name,
            rule_pack=self.pack.id,
        )
        t0 = time.perf_counter()
        memory: list[Record] = []
        grouper = Grouper(
            memory,
            Counts(),
            pack=self.pack,
            tokenizer=self.tokenizer,
            template=self.template,
            strategies=cfg.strategies,
            wrap_mode=cfg.wrap_mode,
            max_instructions=cfg.max_instructions,
            max_tokens=cfg.max_tokens,
            seed=cfg.seed,
        )
        mode = cfg.special_tokens
        intake = _Intake(grouper, summary, memory, cfg.max_tokens, self.spool_threshold)
        left_out: list[dict[str, Any]] = []
        finder = SpecialFinder(self.special | set(self.pack.avoid))
        # "error" stops at the first record holding one, before any later record is read
        screen = Screen(
            grouper.counter,
            finder if mode != "error" else None,
            mode == "keep",
            grouper.admission.facts,
        )
        bar = self._bar(None, desc="counting tokens")
        start = 0  # records read before the batch
        for items, screened in screened_batches(
            screen, self._batches(records, finder if mode == "error" else None), workers
        ):
            kept = self._sort_found(items, screened.found, start, left_out)
            intake.positions.extend(start + j for j in kept)
            counts = grouper.counter.take_counts(screened.counted)
            intake.take([items[j] for j in kept], counts, screened.facts)
            start += len(items)
            if bar is not None:
                bar.update(len(items))
        if bar is not None:
            bar.close()
        intake.finish()
        summary.invalid = [r.to_dict() for r in invalid or []]
        summary.rejected[:0] = left_out
        summary.special_token_records += len(left_out)
        summary.records_read = intake.stored + len(summary.invalid) + len(left_out)
        summary.records_mosaicked = len(intake.admitted)
        summary.seconds["read_and_count"] = time.perf_counter() - t0
        return Prepared(grouper, intake.admitted, summary, intake.positions)

    def _batches(
        self, records: Iterable[Record | dict[str, Any]], finder: SpecialFinder | None
    ) -> Iterator[list[Record]]:
        """The records in batches; with ``finder``, the first holding a special string is an
        error (``--special-tokens error``)."""
        start = 0
        for chunk in batches(records, COUNT_BATCH):
            batch = [_as_record(r, start + j) for j, r in enumerate(chunk)]
            if finder is not None:
                for j, record in enumerate(batch):
                    found = finder.find(record)
                    if found is not None:
                        raise InputError(
                            f"{_holds(start + j, record, *found)} (--special-tokens skip leaves "
                            "such records out, keep mosaics them)"
                        )
            yield batch
            start += len(batch)

    def _sort_found(
        self,
        items: list[Record],
        found: list[tuple[int, str, str]],
        start: int,
        left_out: list[dict[str, Any]],
    ) -> list[int]:
        """The places in ``items`` of the records that go on, given those holding special
        strings (``found``): counted and kept (``--special-tokens keep``), or left out."""
        if not found:
            return list(range(len(items)))
        if self.config.special_tokens == "keep":
            self.summary.special_token_records += len(found)
            return list(range(len(items)))
        for j, where, token in found:
            record = items[j]
            detail = _holds(start + j, record, where, token)
            left_out.append(Reject(start + j, record.id, "special_tokens", detail).to_dict())
        dropped = {j for j, _, _ in found}
        return [j for j in range(len(items)) if j not in dropped]

    def run_epoch(self, prepared: Prepared, epoch: int) -> Iterator[Sample]:
        """The samples of one epoch, in order; counted into ``prepared.summary``."""
        add = prepared.summary.add
        for sample in prepared.grouper.group_epoch(prepared.admitted, epoch):
            add(sample)
            yield sample

    def finish(self, prepared: Prepared, seconds: float) -> RunSummary:
        """Fold the grouping's own counters into the summary."""
        summary, grouper = prepared.summary, prepared.grouper
        for i in grouper.late_rejects:
            position = prepared.positions[i] if i < len(prepared.positions) else i
            summary.rejected.append(
                Reject(
                    position, grouper.records[i].id, "too_long", "too long once counted exactly"
                ).to_dict()
            )
        grouper.late_rejects.clear()
        g = grouper.stats
        summary.counting = grouper.counter.counting
        summary.exact_checks += g.exact_checks
        summary.margin_misses += g.margin_misses
        summary.plain_fallbacks += g.plain_fallbacks
        summary.rule_fallbacks += g.rule_fallbacks
        summary.seconds["group"] = summary.seconds.get("group", 0.0) + seconds
        return summary

    # ------------------------------------------------------------------ whole runs

    def run(
        self, records: Iterable[Record | dict[str, Any]], invalid: list[InvalidRecord] | None = None
    ) -> Iterator[Sample]:
        """Yield the samples of every epoch, in order.

        ``invalid`` lists records a reader skipped."""
        prepared = self.prepare(records, invalid)
        bar = self._bar(len(prepared.admitted) * self.config.epochs)
        t0 = time.perf_counter()
        try:
            for epoch in range(self.config.epochs):
                for sample in self.run_epoch(prepared, epoch):
                    if bar is not None:
                        bar.update(sample.spec.instructions)
                    yield sample
        finally:
            if bar is not None:
                bar.close()
            self.finish(prepared, time.perf_counter() - t0)

    def _bar(self, total: int | None, desc: str = "mosaic", unit: str = "rec") -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)


def mosaic(
    records: Iterable[Record | dict[str, Any]], config: MosaicConfig | None = None, **options: Any
) -> Iterator[Sample]:
    """Mosaic samples of ``records``: ``mosaic(records, epochs=2, seed=7)``."""
    if options:
        base = (config or MosaicConfig()).to_dict()
        base.update(options)
        config = MosaicConfig.from_dict(base)
    return Mosaicker(config).run(records)
