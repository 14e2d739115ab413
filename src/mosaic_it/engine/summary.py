"""The summary of a run: what it read, wrote, left out and why; one shape for every executor.

Summaries of parts of a run (epochs on workers, shards on Ray) merge into one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mosaic_it.records import MosaicSpec, Sample


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
    # records whose instruction reads as a meta-instruction (never with a rule or tags, never
    # unnumbered; left out, reason "meta_like", only where no label style can number them)
    meta_like_records: int = 0
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
        "meta_like_records",
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
            for reason in ("invalid", "multi-turn", "special_tokens", "meta_like", "too_long")
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
            f"meta-like records   {self.meta_like_records} (no rule or tags beside them, "
            f"numbered; {out['meta_like']} left out: no label style fits)",
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
