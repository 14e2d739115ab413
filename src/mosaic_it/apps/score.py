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

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mosaic_it.apps.score_report import EvalItem, ScoreReport
from mosaic_it.errors import EnvironmentFault, InputError
from mosaic_it.io.atomic import atomic_path
from mosaic_it.io.readers import iter_raw
from mosaic_it.records import MosaicSpec, SpecError
from mosaic_it.verifier.checks import verify
from mosaic_it.verifier.consistency import read_prompt
from mosaic_it.verifier.reading import reference_answers
from mosaic_it.verifier.spec import load_spec

__all__ = ["plot", "read_eval", "read_responses", "score"]

EXIT_BAD_INPUT = 2


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
        raise EnvironmentFault("--plot needs matplotlib: pip install 'mosaic-it[plot]'") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (strategy, per_k) in enumerate(sorted(report.by_strategy_instructions.items())):
        ks = sorted(per_k)
        color = f"C{i}"
        # None (no item) is a gap in the line; matplotlib's stubs take numbers only
        sample: list[Any] = [per_k[k].sample_accuracy for k in ks]
        instruction: list[Any] = [per_k[k].instruction_accuracy for k in ks]
        ax.plot(
            ks,
            sample,
            marker="o",
            color=color,
            label=f"{strategy}: sample",
        )
        ax.plot(
            ks,
            instruction,
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
    with atomic_path(path) as tmp:  # never through a link at --plot
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
