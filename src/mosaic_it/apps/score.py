"""Score model responses to an evaluation set: ``mosaic-it score EVAL RESPONSES``.

Responses (JSONL of ``{"id", "response"}``) are joined to the evaluation items by id and
verified against each item's spec. The table gives sample-level accuracy (every check passes),
instruction-level accuracy (required answers present, in place, tagged and about the right
instruction, over all required answers), layout accuracy (every check but content passes) and
content accuracy (every answer reads like its own instruction's reference answer), overall and
per strategy, rule and instruction count.

The default mode is ``loose``: on the labelled agreement set (tests/data/agreement) it agrees
with a careful human grader, while ``strict`` also fails answers whose only fault is markdown
decoration, label wording or a friendly first line. ``strict`` is the exact-layout lower bound.

Nothing is dropped silently: a missing response is scored as a failure and listed; a response
whose id is not in the evaluation set is ignored and listed; an empty response fails with the
reason "empty"; an evaluation item whose spec cannot be read is left out, listed with the reason,
and makes the command exit with status 2. A line that is not valid JSON, or has no usable id,
stops the command with the file and line (exit status 2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaic_it.io.files import InputError, iter_raw
from mosaic_it.records import MosaicSpec
from mosaic_it.verifier.checks import (
    SpecError,
    Verdict,
    load_spec,
    read_prompt,
    reference_answers,
    verify,
)

EXIT_BAD_INPUT = 2
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
        layout = bool(verdict) and not any(c.name != "content" for c in verdict.failures)  # type: ignore[union-attr]
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


# ---------------------------------------------------------------------------- reading


def _id(obj: Any, where: str) -> str:
    """The id of a line, as text (ids are joined by text, so 7 and "7" meet)."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected an object, got {type(obj).__name__}")
    if "id" not in obj:
        raise InputError(f"{where}: field 'id': missing")
    value = obj["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(
            f"{where}: field 'id': expected a string or an integer, got {type(value).__name__}"
        )
    return str(value)


def _unique(key: str, where: str, seen: dict[str, str]) -> None:
    if key in seen:
        raise InputError(f"{where}: id {key!r} occurs twice (first at {seen[key]})")
    seen[key] = where


def read_eval(path: str | Path) -> tuple[list[EvalItem], list[dict[str, str]]]:
    """The evaluation items, and those whose spec cannot be used (with where and why)."""
    items: list[EvalItem] = []
    invalid: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for _, where, obj in iter_raw(path):
        key = _id(obj, where)
        _unique(key, where, seen)
        prompt = obj.get("prompt")
        try:
            if "mosaic" not in obj:
                raise SpecError("field 'mosaic' (the spec): missing")
            spec = load_spec(obj["mosaic"])
            texts = None
            if isinstance(prompt, str):
                consistent, texts = read_prompt(spec, prompt)
                if consistent.passed is False:
                    raise SpecError(f"spec does not match its prompt: {consistent.reason}")
            references = _references(obj, spec)
        except SpecError as exc:
            invalid.append({"id": key, "where": where, "error": str(exc)})
            continue
        items.append(
            EvalItem(
                key, spec, where, prompt if isinstance(prompt, str) else None, references, texts
            )
        )
    return items, invalid


def _references(obj: dict[str, Any], spec: MosaicSpec) -> list[str | None] | None:
    """Every instruction's reference answer: the item's "references" (one per instruction,
    written by make-eval), else the answers read from its "reference" (none for skipped ones)."""
    refs = obj.get("references")
    if refs is not None:
        if not (
            isinstance(refs, list)
            and len(refs) == spec.instructions
            and all(r is None or isinstance(r, str) for r in refs)
        ):
            raise SpecError(
                f"field 'references': expected {spec.instructions} texts, one per instruction"
            )
        return refs
    reference = obj.get("reference")
    return reference_answers(spec, reference) if isinstance(reference, str) else None


def read_responses(path: str | Path) -> dict[str, str]:
    """Responses by id; a null response counts as an empty one."""
    responses: dict[str, str] = {}
    seen: dict[str, str] = {}
    for _, where, obj in iter_raw(path):
        key = _id(obj, where)
        _unique(key, where, seen)
        if "response" not in obj:
            raise InputError(f"{where}: field 'response': missing")
        value = obj["response"]
        if value is not None and not isinstance(value, str):
            raise InputError(
                f"{where}: field 'response': expected a string, got {type(value).__name__}"
            )
        responses[key] = value or ""
    return responses


# ---------------------------------------------------------------------------- scoring


def score(
    items: Iterable[EvalItem],
    responses: Mapping[str, str],
    *,
    mode: str = "loose",
    invalid: list[dict[str, str]] | None = None,
) -> ScoreReport:
    report = ScoreReport(mode, invalid=list(invalid or []))
    known: set[str] = set()
    for item in items:
        known.add(item.id)
        report.eval_items += 1
        response = responses.get(item.id)
        if response is None:
            report.missing.append(item.id)
            report.add(item, None)
            continue
        verdict = verify(
            item.spec,
            response,
            mode=mode,
            references=item.references,
            instructions=item.instructions,
        )
        if verdict.passed is None:
            report.not_verifiable.append(item.id)
            continue
        if not response.strip():
            report.empty.append(item.id)
        report.add(item, verdict)
    report.eval_items += len(report.invalid)
    known.update(bad["id"] for bad in report.invalid)
    report.extra = [key for key in responses if key not in known]
    return report


def plot(report: ScoreReport, path: str | Path) -> None:
    """Accuracy against instruction count, one line per strategy (solid: sample level, dashed:
    instruction level), as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'mosaic-it[plot]'") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (strategy, per_k) in enumerate(sorted(report.by_strategy_instructions.items())):
        ks = sorted(per_k)
        color = f"C{i}"
        ax.plot(
            ks,
            [per_k[k].sample_accuracy for k in ks],
            marker="o",
            color=color,
            label=f"{strategy}: sample",
        )
        ax.plot(
            ks,
            [per_k[k].instruction_accuracy for k in ks],
            marker=".",
            linestyle="--",
            color=color,
            label=f"{strategy}: instruction",
        )
    ax.set_xticks(sorted({k for per_k in report.by_strategy_instructions.values() for k in per_k}))
    ax.set_xlabel("instructions per prompt (k)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Mosaic-IT evaluation ({report.mode}), {report.scored} items")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
