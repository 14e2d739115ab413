"""The score table of ``mosaic-it score`` and ``mosaic-it eval``: sample-, instruction-, layout-
and content-level accuracy, overall and per strategy, rule and instruction count, with every
item that could not be scored listed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mosaic_it.records import MosaicSpec
from mosaic_it.verifier.checks import Verdict

LISTED = 20  # ids listed on the terminal per kind of problem (the JSON lists them all)


@dataclass
class EvalItem:
    id: str
    spec: MosaicSpec
    where: str  # file and line, for messages
    prompt: str | None = None
    references: list[str | None] | None = None  # per instruction, for the content check
    instructions: list[str] | None = None  # as read from the prompt


@dataclass
class Tally:
    """Sample-level and instruction-level counts of one group of items."""

    n: int = 0
    passed: int = 0
    required: int = 0
    followed: int = 0
    layout: int = 0  # every check but content passed
    content_n: int = 0  # items whose content could be checked
    content: int = 0  # ... and whose every answer reads like its own instruction's

    def add(
        self,
        passed: bool,
        required: int,
        followed: int,
        layout: bool = False,
        content: bool | None = None,
    ) -> None:
        self.n += 1
        self.passed += passed
        self.required += required
        self.followed += followed
        self.layout += layout
        if content is not None:
            self.content_n += 1
            self.content += content

    @property
    def layout_accuracy(self) -> float | None:
        return self.layout / self.n if self.n else None

    @property
    def content_accuracy(self) -> float | None:
        return self.content / self.content_n if self.content_n else None

    @property
    def sample_accuracy(self) -> float | None:
        return self.passed / self.n if self.n else None

    @property
    def instruction_accuracy(self) -> float | None:
        return self.followed / self.required if self.required else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "passed": self.passed,
            "sample_accuracy": _round(self.sample_accuracy),
            "answers_required": self.required,
            "answers_followed": self.followed,
            "instruction_accuracy": _round(self.instruction_accuracy),
            "layout_accuracy": _round(self.layout_accuracy),
            "content_checked": self.content_n,
            "content_accuracy": _round(self.content_accuracy),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


@dataclass
class ScoreReport:
    mode: str
    overall: Tally = field(default_factory=Tally)
    by_strategy: dict[str, Tally] = field(default_factory=dict)
    by_rule: dict[str, Tally] = field(default_factory=dict)
    by_instructions: dict[int, Tally] = field(default_factory=dict)
    by_strategy_instructions: dict[str, dict[int, Tally]] = field(default_factory=dict)
    failed_checks: Counter[str] = field(default_factory=Counter)
    eval_items: int = 0
    missing: list[str] = field(default_factory=list)  # no response: scored as failures
    extra: list[str] = field(default_factory=list)  # a response to no item: ignored
    empty: list[str] = field(default_factory=list)  # blank responses: failed ("empty")
    not_verifiable: list[str] = field(default_factory=list)  # nothing checkable: not scored
    invalid: list[dict[str, str]] = field(default_factory=list)  # unusable items: not scored

    def add(self, item: EvalItem, verdict: Verdict | None) -> None:
        """Count one item; ``verdict`` None means its response is missing (a failure)."""
        spec = item.spec
        required = len(spec.answer_order)
        passed = bool(verdict and verdict.passed)
        followed = (verdict.followed or 0) if verdict else 0
        layout = verdict is not None and not any(c.name != "content" for c in verdict.failures)
        content = verdict.check("content") if verdict else None
        content_ok = None if content is None or content.passed is None else content.passed
        if verdict is None:
            content_ok = False if item.references else None
        rule = spec.strategy if spec.rule is None else f"{spec.strategy}.{spec.rule}"
        k = spec.instructions
        per_k = self.by_strategy_instructions.setdefault(spec.strategy, {})
        for tally in (
            self.overall,
            self.by_strategy.setdefault(spec.strategy, Tally()),
            self.by_rule.setdefault(rule, Tally()),
            self.by_instructions.setdefault(k, Tally()),
            per_k.setdefault(k, Tally()),
        ):
            tally.add(passed, required, followed, layout, content_ok)
        if verdict is None:
            self.failed_checks["missing"] += 1
        else:
            self.failed_checks.update(c.name for c in verdict.failures)

    @property
    def scored(self) -> int:
        return self.overall.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "counts": {
                "eval_items": self.eval_items,
                "scored": self.scored,
                "missing_responses": len(self.missing),
                "extra_responses": len(self.extra),
                "empty_responses": len(self.empty),
                "not_verifiable": len(self.not_verifiable),
                "invalid_eval_items": len(self.invalid),
            },
            "overall": self.overall.to_dict(),
            "by_strategy": {k: t.to_dict() for k, t in sorted(self.by_strategy.items())},
            "by_rule": {k: t.to_dict() for k, t in sorted(self.by_rule.items())},
            "by_instructions": {
                str(k): t.to_dict() for k, t in sorted(self.by_instructions.items())
            },
            "by_strategy_and_instructions": {
                s: {str(k): t.to_dict() for k, t in sorted(per_k.items())}
                for s, per_k in sorted(self.by_strategy_instructions.items())
            },
            "failed_checks": dict(self.failed_checks.most_common()),
            "missing_ids": self.missing,
            "extra_ids": self.extra,
            "empty_ids": self.empty,
            "not_verifiable_ids": self.not_verifiable,
            "invalid_eval_items": self.invalid,
        }

    def render(self) -> str:
        def pct(x: float | None) -> str:
            return "     -" if x is None else f"{100 * x:6.1f}"

        rows: list[tuple[str, Tally]] = [("overall", self.overall)]
        rows += [(f"strategy {k}", t) for k, t in sorted(self.by_strategy.items())]
        rows += [(f"rule {k}", t) for k, t in sorted(self.by_rule.items())]
        rows += [(f"k={k}", t) for k, t in sorted(self.by_instructions.items())]
        width = max(len(name) for name, _ in rows)
        head = f"mosaic-it score ({self.mode}): {self.scored} of {self.eval_items} evaluation items"
        columns = f"{'n':>6} {'sample %':>9} {'instr. %':>9} {'layout %':>9} {'content %':>9}"
        lines = [f"{head} scored", f"{'':{width}} {columns}"]
        lines += [
            f"{name:{width}} {t.n:6d} {pct(t.sample_accuracy):>9} "
            f"{pct(t.instruction_accuracy):>9} {pct(t.layout_accuracy):>9} "
            f"{pct(t.content_accuracy):>9}"
            for name, t in rows
        ]
        if self.failed_checks:
            lines.append(
                "failed checks: "
                + ", ".join(f"{name} {count}" for name, count in self.failed_checks.most_common())
            )
        for ids, what in (
            (self.missing, "missing response(s), scored as failures"),
            (self.empty, "empty response(s), failed as empty"),
            (self.extra, "response(s) to no evaluation item, ignored"),
            (self.not_verifiable, "item(s) with nothing verifiable, not scored"),
        ):
            if ids:
                shown = ", ".join(ids[:LISTED]) + (" ..." if len(ids) > LISTED else "")
                lines.append(f"{len(ids)} {what}: {shown}")
        if self.invalid:
            lines.append(f"{len(self.invalid)} invalid evaluation item(s), not scored:")
            lines += [f"  {bad['where']}: {bad['error']}" for bad in self.invalid[:LISTED]]
            if len(self.invalid) > LISTED:
                lines.append(f"  ... and {len(self.invalid) - LISTED} more (see --out)")
        return "\n".join(lines)
