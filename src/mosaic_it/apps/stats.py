"""A look at a mosaic dataset: ``mosaic-it stats DATA --report report.html [--png DIR]``.

Counts what a mosaic file holds, from every sample's ``mosaic`` spec: instructions per sample,
tokens per sample against the budget, the strategy, rule and format mix, and, from the
``--stats`` summary that ``mosaic-it mosaic`` writes, what was left out and why. The plots
(matplotlib, Agg backend) are embedded in one HTML page as base64 PNG: it opens offline, with
no script and no external file. ``--png DIR`` writes the same plots as files.

Data without specs (the original records) still gets the token plot: the lengths are counted
with the tokenizer and template given (the bundled tokenizer and Vicuna by default).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaic_it.budget.templates import get_template
from mosaic_it.budget.tokenizer import load_tokenizer
from mosaic_it.errors import InputError
from mosaic_it.io.readers import iter_raw, records_from_raw
from mosaic_it.limits import bound

__all__ = ["DataStats", "collect"]


@dataclass
class DataStats:
    path: str
    samples: int = 0
    with_spec: int = 0
    instructions: Counter[int] = field(default_factory=Counter)
    tokens: list[int] = field(default_factory=list)
    strategies: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)
    numbered: Counter[str] = field(default_factory=Counter)
    epochs: Counter[int] = field(default_factory=Counter)
    budget: int = 2048
    tokens_from: str = "spec"
    summary: dict[str, Any] | None = None  # the --stats summary of the mosaic run

    @property
    def over_budget(self) -> int:
        return sum(1 for n in self.tokens if n > self.budget)

    def rejects(self) -> Counter[str]:
        if not self.summary:
            return Counter()
        s = self.summary
        out: Counter[str] = Counter()
        for key in ("rejected", "invalid"):
            for r in s.get(key) or []:
                out[str(r.get("reason", key))] += 1
        return out

    def overview(self) -> list[tuple[str, str]]:
        rows = [("file", self.path), ("samples", f"{self.samples:,}")]
        if self.instructions:
            n = sum(self.instructions.values())
            mean = sum(k * c for k, c in self.instructions.items()) / n
            rows.append(
                (
                    "instructions per sample",
                    f"mean {mean:.2f}, min {min(self.instructions)}, max {max(self.instructions)}",
                )
            )
        if self.tokens:
            rows.append(
                (
                    "tokens per sample",
                    (
                        f"mean {statistics.fmean(self.tokens):.0f}, "
                        f"median {statistics.median(self.tokens):.0f}, "
                        f"max {max(self.tokens)} ({self.tokens_from})"
                    ),
                )
            )
            rows.append(
                (
                    "budget",
                    f"{self.budget} tokens: mean fill "
                    f"{statistics.fmean(self.tokens) / self.budget:.0%}, "
                    f"{self.over_budget} sample(s) over it",
                )
            )
        if self.summary:
            s = self.summary
            rows.append(
                (
                    "records read",
                    f"{s.get('records_read', '?'):,}"
                    if isinstance(s.get("records_read"), int)
                    else "?",
                )
            )
            rows.append(("records mosaicked", str(s.get("records_mosaicked", "?"))))
            rejects = self.rejects()
            rows.append(
                ("left out", ", ".join(f"{k}: {v}" for k, v in sorted(rejects.items())) or "none")
            )
        return rows


def _spec(obj: Any) -> dict[str, Any] | None:
    spec = obj.get("mosaic") if isinstance(obj, dict) else None
    if isinstance(spec, str):  # datasets rows carry the spec as JSON text
        try:
            spec = json.loads(spec)
        except ValueError:
            return None
    return spec if isinstance(spec, dict) else None


def collect(
    path: str,
    *,
    summary_path: str | None = None,
    budget: int | None = None,
    tokenizer: str | None = None,
    template: str = "vicuna",
) -> DataStats:
    """Read a data file (any input format) and count what the report shows."""
    if budget is not None:
        bound("--max-tokens", budget, at_least=1, whole=True, why="the budget line of the plots")
    raw = list(iter_raw(path))
    if not raw:
        raise InputError(f"{path}: no records")
    stats = DataStats(path)
    summary = None
    if summary_path:
        try:
            loaded = json.loads(Path(summary_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{summary_path}: cannot read the summary JSON ({exc})") from None
        summary = loaded.get("summary", loaded) if isinstance(loaded, dict) else None
        if not isinstance(summary, dict):
            raise InputError(
                f"{summary_path}: expected the JSON that mosaic-it mosaic --stats writes"
            )
        stats.summary = summary
        config = loaded.get("config") or {}
        budget = budget or config.get("max_tokens") or summary.get("max_tokens")
    stats.budget = int(budget or 2048)
    stats.samples = len(raw)
    tokens: list[int] = []
    for _, _, obj in raw:
        spec = _spec(obj)
        if spec is None:
            continue
        stats.with_spec += 1
        k = spec.get("instructions") or len(spec.get("sources") or [])
        stats.instructions[int(k)] += 1
        strategy = str(spec.get("strategy", "?"))
        stats.strategies[strategy] += 1
        if spec.get("rule"):
            stats.rules[f"{strategy}.{spec['rule']}"] += 1
        stats.formats[str(spec.get("format", "?"))] += 1
        stats.numbered["numbered" if spec.get("numbering") else "unnumbered"] += 1
        if isinstance(spec.get("epoch"), int):
            stats.epochs[spec["epoch"]] += 1
        if isinstance(spec.get("tokens"), int) and spec["tokens"] > 0:
            tokens.append(spec["tokens"])
    if len(tokens) == stats.samples:
        stats.tokens = tokens
    else:  # no exact counts in the file: count the rendered sequences
        tok = load_tokenizer(tokenizer)
        tmpl = get_template(template, tokenizer)
        items = [(r.prompt, r.output, r.system) for r in records_from_raw(raw, on_error="skip")]
        stats.tokens = [
            n
            for s in range(0, len(items), 8192)
            for n in tmpl.count_batch(tok, items[s : s + 8192])
        ]
        stats.tokens_from = f"counted: {template} template, {tok.name}"
    return stats


# --------------------------------------------------------------------------------------
