"""The Python API: the same engine the command line runs, over any iterable of records."""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mosaic_it.budget.special import SPECIAL_TOKEN_MODES, SpecialFinder, run_special_strings
from mosaic_it.budget.templates import check_template, get_template
from mosaic_it.budget.tokenizer import Tokenizer, load_tokenizer
from mosaic_it.engine.grouping import Counts, Grouper, Reject
from mosaic_it.engine.parallel import counted_batches
from mosaic_it.engine.store import SPOOL_THRESHOLD, DiskStore, release_freed_memory
from mosaic_it.io.files import InputError, InvalidRecord, batches, record_from_alpaca
from mosaic_it.method.rulepack import RulePack, load_rule_pack
from mosaic_it.method.sizing import WRAP_MODES
from mosaic_it.method.strategies import STRATEGIES
from mosaic_it.records import MosaicSpec, Record, Sample

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
            raise ValueError(f"{name}: {why}")

        if self.epochs < 1:
            bad("epochs", f"must be at least 1, got {self.epochs}")
        if self.max_instructions < 1:
            bad("max_instructions", f"must be at least 1, got {self.max_instructions}")
        if self.max_tokens < 1:
            bad("max_tokens", f"must be at least 1, got {self.max_tokens}")
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
            if s not in STRATEGIES:
                bad("strategies", f"unknown strategy {s!r}; choose from {', '.join(STRATEGIES)}")
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
            raise ValueError(f"unknown option(s): {', '.join(unknown)}")
        return cls(**d)


@dataclass
class RunSummary:
    """What a run read, wrote, left out and why."""

    records_read: int = 0
    records_mosaicked: int = 0
    samples_written: int = 0
    epochs: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    duplicate_ids: int = 0
    instructions_per_sample: Counter[int] = field(default_factory=Counter)
    strategies: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    # "strategy.RULE: reason" -> samples whose first drawn rule did not apply and was replaced
    rules_replaced: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)
    special_token_records: int = 0  # records holding a special token (kept or left out)
    wrap_mode: str = ""
    max_tokens: int = 0
    tokens_in_records: int = 0
    tokens_in_samples: int = 0
    max_sample_tokens: int = 0
    exact_checks: int = 0
    margin_misses: int = 0
    plain_fallbacks: int = 0
    rule_fallbacks: int = 0
    tokenizer: str = ""
    counting: str = ""  # how exact sample counts were made (see Grouper.counting)
    template: str = ""
    rule_pack: str = ""
    resumed_epochs: list[int] = field(default_factory=list)
    workers: int = 1
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, sample: Sample) -> None:
        self.add_spec(sample.spec)
        if sample.replaced:
            self.rules_replaced[sample.replaced] += 1

    def add_spec(self, spec: MosaicSpec) -> None:
        """Count one written sample from its spec."""
        self.samples_written += 1
        self.instructions_per_sample[spec.instructions] += 1
        self.strategies[spec.strategy] += 1
        if spec.rule:
            self.rules[f"{spec.strategy}.{spec.rule}"] += 1
        self.formats[spec.layout_kind] += 1
        self.tokens_in_samples += spec.tokens
        self.max_sample_tokens = max(self.max_sample_tokens, spec.tokens)

    # fields a merge adds up, takes the largest of, or keeps from the first summary
    _SUMS = (
        "records_read",
        "records_mosaicked",
        "samples_written",
        "duplicate_ids",
        "special_token_records",
        "tokens_in_records",
        "tokens_in_samples",
        "exact_checks",
        "margin_misses",
        "plain_fallbacks",
        "rule_fallbacks",
    )
    _COUNTERS = ("instructions_per_sample", "strategies", "rules", "rules_replaced", "formats")

    def merge(self, other: RunSummary) -> None:
        """Fold the summary of another part of the same run (a shard) into this one."""
        for key in self._SUMS:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        for key in self._COUNTERS:
            getattr(self, key).update(getattr(other, key))
        self.max_sample_tokens = max(self.max_sample_tokens, other.max_sample_tokens)
        self.invalid += other.invalid
        self.rejected += other.rejected
        self.resumed_epochs = sorted(set(self.resumed_epochs) | set(other.resumed_epochs))
        for key, seconds in other.seconds.items():
            self.seconds[key] = self.seconds.get(key, 0.0) + seconds
        for key in (
            "epochs",
            "wrap_mode",
            "max_tokens",
            "tokenizer",
            "template",
            "rule_pack",
            "counting",
        ):
            if not getattr(self, key):
                setattr(self, key, getattr(other, key))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        """The summary :meth:`to_dict` wrote (derived keys such as means are recomputed)."""
        known = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        summary = cls(**known)
        summary.instructions_per_sample = Counter(
            {int(k): v for k, v in d.get("instructions_per_sample", {}).items()}
        )
        for key in ("strategies", "rules", "rules_replaced", "formats"):
            setattr(summary, key, Counter(d.get(key, {})))
        return summary

    @property
    def mean_instructions(self) -> float:
        n = sum(self.instructions_per_sample.values())
        return sum(k * c for k, c in self.instructions_per_sample.items()) / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["instructions_per_sample"] = {
            str(k): self.instructions_per_sample[k] for k in sorted(self.instructions_per_sample)
        }
        for key in ("strategies", "rules", "rules_replaced", "formats"):
            d[key] = dict(sorted(getattr(self, key).items()))
        d["left_out"] = self.left_out()
        d["mean_instructions_per_sample"] = round(self.mean_instructions, 4)
        d["mean_sample_tokens"] = (
            round(self.tokens_in_samples / self.samples_written, 2) if self.samples_written else 0
        )
        d["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        return d

    def left_out(self) -> dict[str, int]:
        """Records left out, by reason (the printed summary and the JSON both show these)."""
        counts = Counter(r["reason"] for r in self.invalid + self.rejected)
        return {
            reason: counts[reason]
            for reason in ("invalid", "multi-turn", "special_tokens", "too_long")
        }

    def render(self) -> str:
        """A short human-readable report."""
        out = self.left_out()
        replaced = sum(self.rules_replaced.values())
        lines = [
            f"records read        {self.records_read}",
            f"records mosaicked   {self.records_mosaicked}",
            f"left out (invalid)  {out['invalid']}",
            f"left out (multi-turn) {out['multi-turn']}",
            (
                f"left out (special tokens) {out['special_tokens']}"
                + (
                    f" ({self.special_token_records} kept)"
                    if self.special_token_records and not out["special_tokens"]
                    else ""
                )
            ),
            f"rejected (too long) {out['too_long']}",
            f"samples written     {self.samples_written} over {self.epochs} epoch(s)",
            f"instructions/sample mean {self.mean_instructions:.2f}, histogram "
            + " ".join(f"{k}:{c}" for k, c in sorted(self.instructions_per_sample.items())),
            "strategies          "
            + " ".join(f"{k}:{v}" for k, v in sorted(self.strategies.items())),
            "formats             " + " ".join(f"{k}:{v}" for k, v in sorted(self.formats.items())),
            "rules               " + " ".join(f"{k}:{v}" for k, v in sorted(self.rules.items())),
            f"rules replaced      {replaced} (first drawn rule did not apply) "
            + " ".join(f"{k}:{v}" for k, v in sorted(self.rules_replaced.items())),
            f"tokens              {self.tokens_in_samples} in samples (max {self.max_sample_tokens}"
            f" of budget {self.max_tokens}, {self.template} template, {self.tokenizer})",
        ]
        if self.counting:
            lines.append(f"counting            {self.counting}")
        if self.duplicate_ids:
            lines.append(f"warning: {self.duplicate_ids} record id(s) occur more than once")
        for r in (self.rejected + self.invalid)[:10]:
            lines.append(f"  left out: {r['reason']}: {r['detail']}")
        more = len(self.rejected) + len(self.invalid) - 10
        if more > 0:
            lines.append(f"  ... and {more} more (see --stats / --rejects)")
        return "\n".join(lines)


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


class Mosaicker:
    """Runs Mosaic-IT over records: ``for sample in Mosaicker(config).run(records): ...``.

    After (or during) a run, ``summary`` holds the counts and everything left out. For files,
    :meth:`write` runs the epochs on several processes and can resume an interrupted run.
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
        spooled to disk once ``spool_threshold`` characters of text are held).
        """
        cfg, summary = self.config, RunSummary()
        self.summary = summary
        summary.wrap_mode, summary.max_tokens, summary.epochs = (
            cfg.wrap_mode,
            cfg.max_tokens,
            cfg.epochs,
        )
        summary.tokenizer, summary.template, summary.rule_pack = (
            self.tokenizer.name,
            self.template.name,
            self.pack.id,
        )
        t0 = time.perf_counter()
        memory: list[Record] = []
        disk: DiskStore | None = None
        counts = Counts()
        grouper = Grouper(
            memory,
            counts,
            pack=self.pack,
            tokenizer=self.tokenizer,
            template=self.template,
            strategies=cfg.strategies,
            wrap_mode=cfg.wrap_mode,
            max_instructions=cfg.max_instructions,
            max_tokens=cfg.max_tokens,
            seed=cfg.seed,
        )
        admitted = array("i")
        seen_ids: set[int] = set()
        systems: dict[str, int] = {}
        system_of = array("i")
        bar = self._bar(None, desc="counting tokens")
        n = held = 0

        finder = SpecialFinder(self.special | set(self.pack.avoid))
        positions = array("i")  # input position of every stored record
        left_out: list[dict[str, Any]] = []

        def parsed() -> Iterator[list[Record]]:
            start = 0
            for chunk in batches(records, COUNT_BATCH):
                batch = [_as_record(r, start + j) for j, r in enumerate(chunk)]
                kept = [
                    j for j, r in enumerate(batch) if self._admit(finder, r, start + j, left_out)
                ]
                positions.extend(start + j for j in kept)
                yield [batch[j] for j in kept]
                start += len(chunk)

        for items, prompt_counts, output_counts in counted_batches(grouper, parsed(), workers):
            counts.prompt.extend(prompt_counts)
            counts.output.extend(output_counts)
            held += sum(len(r.instruction) + len(r.input) + len(r.output) for r in items)
            if disk is None and held > self.spool_threshold:
                disk = DiskStore()
                disk.extend(memory)
                memory.clear()
                grouper.spool(disk)
                release_freed_memory()
            for j, r in enumerate(items):
                index = n + j
                key = hash(r.id)
                if key in seen_ids:
                    summary.duplicate_ids += 1
                seen_ids.add(key)
                system_of.append(systems.setdefault(r.system, len(systems)))
                ok, tokens = grouper.fits_alone(index, r)
                if ok:
                    admitted.append(index)
                else:
                    summary.rejected.append(
                        Reject(
                            positions[index],
                            r.id,
                            "too_long",
                            f"needs {tokens} tokens alone, budget {cfg.max_tokens}",
                            tokens,
                        ).to_dict()
                    )
            (disk if disk is not None else memory).extend(items)
            summary.tokens_in_records += sum(prompt_counts) + sum(output_counts)
            n += len(items)
            if bar is not None:
                bar.update(len(items))
        if bar is not None:
            bar.close()
        if disk is not None:
            disk.flush()
        grouper.systems = system_of if len(systems) > 1 else None
        summary.invalid = [r.to_dict() for r in invalid or []]
        summary.rejected[:0] = left_out
        summary.special_token_records += len(left_out)
        summary.records_read = n + len(summary.invalid) + len(left_out)
        summary.records_mosaicked = len(admitted)
        summary.seconds["read_and_count"] = time.perf_counter() - t0
        return Prepared(grouper, admitted, summary, positions)

    def _admit(
        self, finder: SpecialFinder, record: Record, index: int, left_out: list[dict[str, Any]]
    ) -> bool:
        """Whether a record goes on to be mosaicked, given the special strings in its text."""
        found = finder.find(record)
        if found is None:
            return True
        where, token = found
        detail = (
            f"record {index} (id {record.id!r}): field {where!r} holds {token!r}, a special "
            "token or chat-control string"
        )
        mode = self.config.special_tokens
        if mode == "error":
            raise InputError(
                f"{detail} (--special-tokens skip leaves such records out, keep mosaics them)"
            )
        if mode == "keep":
            self.summary.special_token_records += 1
            return True
        left_out.append(Reject(index, record.id, "special_tokens", detail).to_dict())
        return False

    def run_epoch(self, prepared: Prepared, epoch: int) -> Iterator[Sample]:
        """The samples of one epoch, in order; counted into ``prepared.summary``."""
        add = prepared.summary.add
        for sample in prepared.grouper.run_epoch(prepared.admitted, epoch):
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
        summary.counting = grouper.counting
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
