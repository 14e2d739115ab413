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

import base64
import html
import io
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaic_it.budget.templates import get_template
from mosaic_it.budget.tokenizer import load_tokenizer
from mosaic_it.io.files import InputError, atomic_writer, iter_raw, records_from_raw


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
# Plots
# --------------------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plots need matplotlib: pip install 'mosaic-it[plot]'") from None
    return plt


def figures(stats: DataStats) -> list[tuple[str, str, bytes]]:
    """(name, caption, PNG bytes) of every plot that has something to show."""
    plt = _pyplot()
    out: list[tuple[str, str, bytes]] = []

    def save(fig: Any, name: str, caption: str) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        out.append((name, caption, buf.getvalue()))

    if stats.instructions:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ks = sorted(stats.instructions)
        ax.bar(ks, [stats.instructions[k] for k in ks], color="C0")
        ax.set_xticks(ks)
        ax.set_xlabel("instructions per sample (k)")
        ax.set_ylabel("samples")
        ax.set_title("Instructions per sample")
        ax.grid(axis="y", alpha=0.3)
        save(fig, "instructions", "How many instructions each sample groups.")
    if stats.tokens:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        top = max(max(stats.tokens), stats.budget)
        ax.hist(
            stats.tokens, bins=min(60, max(10, len(stats.tokens) // 20)), range=(0, top), color="C2"
        )
        ax.axvline(stats.budget, color="C3", linestyle="--", label=f"budget {stats.budget}")
        ax.set_xlabel("tokens per sample (rendered training sequence)")
        ax.set_ylabel("samples")
        ax.set_title("Tokens per sample against the budget")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        save(
            fig, "tokens", f"Sequence lengths ({stats.tokens_from}); the dashed line is the budget."
        )
    if stats.strategies:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
        for ax, (title, counter) in zip(
            axes,
            (
                ("strategy", stats.strategies),
                ("format layer", stats.formats),
                ("numbering", stats.numbered),
            ),
        ):
            keys = sorted(counter)
            ax.bar(keys, [counter[k] for k in keys], color=[f"C{i}" for i in range(len(keys))])
            ax.set_title(title)
            ax.tick_params(axis="x", labelrotation=20)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("samples")
        save(fig, "strategies", "Strategy, format layer and numbering of the samples.")
    if stats.rules:
        keys = sorted(stats.rules, key=lambda k: (k.split(".")[0], -stats.rules[k], k))
        fig, ax = plt.subplots(figsize=(7, 0.32 * len(keys) + 1.2))
        colors = ["C1" if k.startswith("permute") else "C4" for k in keys]
        ax.barh(keys[::-1], [stats.rules[k] for k in keys][::-1], color=colors[::-1])
        ax.set_xlabel("samples")
        ax.set_title("Rule mix (permute and maskout)")
        ax.grid(axis="x", alpha=0.3)
        save(fig, "rules", "How often each permute and maskout rule was drawn.")
    rejects = stats.rejects()
    if stats.summary is not None:
        fig, ax = plt.subplots(figsize=(7, 2.8))
        admitted = stats.summary.get("records_mosaicked")
        keys = (["mosaicked"] if isinstance(admitted, int) else []) + sorted(rejects)
        values = ([admitted] if isinstance(admitted, int) else []) + [
            rejects[k] for k in sorted(rejects)
        ]
        bars = ax.barh(
            keys[::-1],
            values[::-1],
            color=(["C0"] * (len(keys) - len(rejects)) + ["C3"] * len(rejects))[::-1],
        )
        ax.bar_label(bars, labels=[f"{v:,}" for v in values[::-1]], padding=3)
        ax.set_xscale("symlog")
        ax.set_xlim(0, max(values + [1]) * 4)
        ax.set_xlabel("records (log scale)")
        ax.set_title("Records mosaicked and left out" + ("" if rejects else ": none left out"))
        save(fig, "rejects", "Records the run used and those it left out, by reason.")
    return out


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:980px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}
figure{margin:1.2em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
code{background:#f6f6f6;padding:0 .2em}
"""


def _table(rows: list[tuple[str, str]], head: tuple[str, str] | None = None) -> str:
    cells = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
    top = f"<tr><th>{html.escape(head[0])}</th><th>{html.escape(head[1])}</th></tr>" if head else ""
    return f"<table>{top}{cells}</table>"


def render_html(stats: DataStats, figs: list[tuple[str, str, bytes]]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mosaic-it stats: {html.escape(Path(stats.path).name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>mosaic-it stats: {html.escape(Path(stats.path).name)}</h1>",
        _table(stats.overview()),
    ]
    for name, caption, png in figs:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure id="{name}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
            "</figcaption></figure>"
        )
    if stats.rules:
        parts.append("<h2>Rules</h2>")
        parts.append(
            _table([(k, f"{v:,}") for k, v in stats.rules.most_common()], ("rule", "samples"))
        )
    if stats.summary:
        listed = (stats.summary.get("rejected") or []) + (stats.summary.get("invalid") or [])
        if listed:
            parts.append(f"<h2>Left out ({len(listed)})</h2>")
            rows = [
                (str(r.get("reason", "")), f"record {r.get('index', '?')}: {r.get('detail', '')}")
                for r in listed[:50]
            ]
            parts.append(_table(rows, ("reason", "detail")))
            if len(listed) > 50:
                parts.append(f"<p>... and {len(listed) - 50} more (see the --rejects file).</p>")
    parts.append("<p>Written by <code>mosaic-it stats</code>.</p></body></html>")
    return "\n".join(parts) + "\n"


def write_report(stats: DataStats, report: str | None, png_dir: str | None) -> list[str]:
    figs = figures(stats) if (report or png_dir) else []
    written = []
    if png_dir:
        d = Path(png_dir)
        d.mkdir(parents=True, exist_ok=True)
        for name, _, png in figs:
            (d / f"{name}.png").write_bytes(png)
            written.append(str(d / f"{name}.png"))
    if report:
        with atomic_writer(report) as out:
            out.write(render_html(stats, figs))
        written.append(report)
    return written
