"""The report of ``mosaic-it stats``: plots (matplotlib, Agg backend) of a
:class:`mosaic_it.apps.stats.DataStats`, embedded in one HTML page as base64 PNG (it opens
offline, with no script and no external file), or written as PNG files."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mosaic_it.errors import EnvironmentFault
from mosaic_it.io.atomic import atomic_bytes, atomic_writer

if TYPE_CHECKING:  # apps.stats imports this module for write_report
    from mosaic_it.apps.stats import DataStats


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise EnvironmentFault("plots need matplotlib: pip install 'mosaic-it[plot]'") from None
    return plt


def figures(stats: DataStats) -> list[tuple[str, str, bytes]]:
    """(name, caption, PNG bytes) of every plot that has something to show."""
    plt = _pyplot()
    out: list[tuple[str, str, bytes]] = []
    for draw in (_instructions, _tokens, _strategies, _rules, _records):
        drawn = draw(plt, stats)
        if drawn is None:
            continue
        fig, name, caption = drawn
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        out.append((name, caption, buf.getvalue()))
    return out


Drawn = tuple[Any, str, str] | None  # (figure, name, caption), or None: nothing to show


def _instructions(plt: Any, stats: DataStats) -> Drawn:
    if not stats.instructions:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ks = sorted(stats.instructions)
    ax.bar(ks, [stats.instructions[k] for k in ks], color="C0")
    ax.set_xticks(ks)
    ax.set_xlabel("instructions per sample (k)")
    ax.set_ylabel("samples")
    ax.set_title("Instructions per sample")
    ax.grid(axis="y", alpha=0.3)
    return fig, "instructions", "How many instructions each sample groups."


def _tokens(plt: Any, stats: DataStats) -> Drawn:
    if not stats.tokens:
        return None
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
    caption = f"Sequence lengths ({stats.tokens_from}); the dashed line is the budget."
    return fig, "tokens", caption


def _strategies(plt: Any, stats: DataStats) -> Drawn:
    if not stats.strategies:
        return None
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
    return fig, "strategies", "Strategy, format layer and numbering of the samples."


def _rules(plt: Any, stats: DataStats) -> Drawn:
    if not stats.rules:
        return None
    keys = sorted(stats.rules, key=lambda k: (k.split(".")[0], -stats.rules[k], k))
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(keys) + 1.2))
    colors = ["C1" if k.startswith("permute") else "C4" for k in keys]
    ax.barh(keys[::-1], [stats.rules[k] for k in keys][::-1], color=colors[::-1])
    ax.set_xlabel("samples")
    ax.set_title("Rule mix (permute and maskout)")
    ax.grid(axis="x", alpha=0.3)
    return fig, "rules", "How often each permute and maskout rule was drawn."


def _records(plt: Any, stats: DataStats) -> Drawn:
    if stats.summary is None:
        return None
    rejects = stats.rejects()
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
    return fig, "rejects", "Records the run used and those it left out, by reason."


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
            atomic_bytes(d / f"{name}.png", png)
            written.append(str(d / f"{name}.png"))
    if report:
        with atomic_writer(report) as out:
            out.write(render_html(stats, figs))
        written.append(report)
    return written
