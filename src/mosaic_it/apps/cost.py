"""What training on mosaic data costs against the original: ``mosaic-it cost ORIGINAL MOSAIC``.

The seed of this project says Mosaic-IT cuts training cost by about 80%. The likeliest reading:
FastChat trains the original for 3 epochs (52k records -> 156k sequences) and the mosaic of 4
epochs once (~40k sequences), and pads every sequence to 2048 tokens, so cost follows the
number of sequences. Whether that holds depends on how batches are padded, so every figure is
given for three regimes:

* ``pad_to_max``: every sequence padded to ``max_length`` (FastChat's ``padding="max_length"``);
* ``dynamic``: each batch padded to its longest sequence, batches drawn in a fixed seeded order
  (a new shuffle per epoch), both per optimizer batch and per micro-batch (what one forward pass
  pads together);
* ``packing``: sequences packed best-fit-decreasing into rows of ``max_length`` (TRL's ``bfd``),
  each row counted at full length.

Sequence lengths are exact token counts of the rendered training sequences (template, BOS and
EOS included); a sequence longer than ``max_length`` counts as ``max_length`` (the trainer cuts it).

Time: one micro-batch of ``mosaic-it train``'s own step (TRL's SFTTrainer ``training_step``:
forward, loss on the completion, TRL's token metrics, backward) is measured on a real model at
a few sequence lengths (random token ids: the time depends on the shape, not the text), and
the trainer's optimizer step (with gradient clipping) once; every micro-batch of every epoch
is then priced by linear interpolation in its padded length. These are extrapolations from a
few measured steps, and they say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from mosaic_it.apps.cost_counting import (
    REGIMES,
    CostOptions,
    Side,
    sequence_lengths,
    side_cost,
)
from mosaic_it.apps.cost_timing import Timing, measure, price
from mosaic_it.limits import MAX_REPEATS, bound

__all__ = ["render", "report", "run_cost"]

REGIME_LABELS = {
    "pad_to_max": "pad to max length",
    "dynamic_batch": "dynamic padding per batch",
    "dynamic_micro": "dynamic padding per micro-batch",
    "packing": "packing (best-fit decreasing)",
}

SEED_CLAIM = 0.80


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _reduction(original: float, mosaic: float) -> float:
    return 1.0 - mosaic / original if original else 0.0


def _fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def _fmt_secs(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def _change(original: float, mosaic: float) -> str:
    r = _reduction(original, mosaic)
    return f"{r:.0%} less" if r >= 0 else f"{-r:.0%} more"


def report(original: Side, mosaic: Side, opt: CostOptions, timing: Timing | None) -> dict[str, Any]:
    """The comparison as a JSON-able dict, with the table rows and the verdict on the claim."""
    verdict = reductions(original, mosaic, timing)
    return {
        "options": asdict(opt),
        "original": original.to_dict(),
        "mosaic": mosaic.to_dict(),
        "timing": asdict(timing) if timing else None,
        "reduction": verdict,
        "table": table_rows(original, mosaic, opt, timing),
        "claim": claim_lines(verdict, original, mosaic),
    }


def table_rows(
    original: Side, mosaic: Side, opt: CostOptions, timing: Timing | None
) -> list[list[str]]:
    """The comparison table: a head row, then figure, original, mosaic and the change."""
    rows: list[list[str]] = []
    o_head = f"original x {original.epochs} epochs"
    m_head = f"mosaic x {mosaic.epochs} epoch{'s' if mosaic.epochs > 1 else ''}"
    rows.append(["", o_head, m_head, "mosaic vs original"])

    def add(label: str, a: float, b: float, fmt: Callable[[float], str] = _fmt_int) -> None:
        rows.append([label, fmt(a), fmt(b), _change(a, b)])

    add("sequences trained", original.sequences * original.epochs, mosaic.sequences * mosaic.epochs)
    add("real tokens", original.real_tokens * original.epochs, mosaic.real_tokens * mosaic.epochs)
    for key in REGIMES:
        label = REGIME_LABELS[key]
        if key == "dynamic_batch":
            label += f" ({opt.batch_size})"
        elif key == "dynamic_micro":
            label += f" ({opt.micro_batch_size})"
        add(f"tokens processed, {label}", original.regimes[key].tokens, mosaic.regimes[key].tokens)
    add(
        "optimizer steps (batch %d)" % opt.batch_size,
        original.regimes["pad_to_max"].steps,
        mosaic.regimes["pad_to_max"].steps,
    )
    add(
        "optimizer steps, packing",
        original.regimes["packing"].steps,
        mosaic.regimes["packing"].steps,
    )
    if timing is not None:
        for key in REGIMES:
            a, b = original.regimes[key].seconds or 0.0, mosaic.regimes[key].seconds or 0.0
            rows.append(
                [
                    f"est. time per epoch, {REGIME_LABELS[key]}",
                    _fmt_secs(a / original.epochs),
                    _fmt_secs(b / mosaic.epochs),
                    "",
                ]
            )
            add(f"est. time in all, {REGIME_LABELS[key]}", a, b, _fmt_secs)
    return rows


def reductions(original: Side, mosaic: Side, timing: Timing | None) -> dict[str, float]:
    """How much less the mosaic run costs, per regime (tokens, and time when measured)."""
    verdict = {}
    for key in REGIMES:
        a, b = original.regimes[key].tokens, mosaic.regimes[key].tokens
        verdict[key] = round(_reduction(a, b), 4)
    verdict["sequences"] = round(
        _reduction(original.sequences * original.epochs, mosaic.sequences * mosaic.epochs), 4
    )
    verdict["real_tokens"] = round(
        _reduction(original.real_tokens * original.epochs, mosaic.real_tokens * mosaic.epochs), 4
    )
    if timing is not None:
        for key in REGIMES:
            ta, tb = original.regimes[key].seconds or 0.0, mosaic.regimes[key].seconds or 0.0
            verdict[f"time_{key}"] = round(_reduction(ta, tb), 4)
    return verdict


def claim_lines(verdict: dict[str, float], original: Side, mosaic: Side) -> list[str]:
    """Plain sentences: how much of the seed's 80% holds under each regime."""

    def holds(r: float) -> str:
        if r >= SEED_CLAIM - 0.05:
            return "holds"
        if r > 0:
            return f"holds in part ({r / SEED_CLAIM:.0%} of it)"
        return "does not hold: the mosaic run costs more"

    seqs_o, seqs_m = original.sequences * original.epochs, mosaic.sequences * mosaic.epochs
    toks_o, toks_m = original.real_tokens * original.epochs, mosaic.real_tokens * mosaic.epochs
    lines = [
        f"The seed claims about {SEED_CLAIM:.0%} lower training cost. The mosaic run trains "
        f"{seqs_m:,} sequences against {seqs_o:,} ({_change(seqs_o, seqs_m)}) and "
        f"{toks_m:,} real tokens against {toks_o:,} ({_change(toks_o, toks_m)}).",
    ]
    for key in REGIMES:
        r = verdict[key]
        amount = f"{r:.0%} fewer" if r >= 0 else f"{-r:.0%} more"
        lines.append(f"- {REGIME_LABELS[key]}: {amount} tokens processed; the claim {holds(r)}.")
    return lines


def render(result: dict[str, Any]) -> str:
    rows = result["table"]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if k == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    o, m = result["original"], result["mosaic"]
    notes = [
        f"original: {o['path']}: {o['sequences']:,} sequences/epoch, {o['truncated']} longer than "
        f"max length (longest {o['longest']})",
        f"mosaic:   {m['path']}: {m['sequences']:,} sequences/epoch, {m['truncated']} longer than "
        f"max length (longest {m['longest']})",
    ]
    t = result["timing"]
    if t:
        pts = ", ".join(f"{n}: {s:.3f} s" for n, s in zip(t["lengths"], t["seconds"]))
        load = f", load average {t['load_average']:.1f}" if t["load_average"] is not None else ""
        notes.append(
            f"times are extrapolated from measured steps of {t['model']} on {t['device']}: "
            f"mosaic-it train's step (TRL SFTTrainer training_step) on a micro-batch of "
            f"{t['micro_batch_size']} at lengths {pts} "
            f"(fastest of {t['repeats']}), optimizer step {t['optimizer_step']:.3f} s{load}; every "
            "micro-batch of every epoch priced by interpolation in its padded length"
        )
    return "\n".join(out + [""] + result["claim"] + [""] + notes)


def run_cost(
    original: str,
    mosaic: str,
    opt: CostOptions,
    *,
    template: str = "vicuna",
    tokenizer: str | None = None,
    model: str | None = "builtin:tiny-llama",
    repeats: int = 3,
) -> dict[str, Any]:
    if model:
        bound(
            "--measure-repeats",
            repeats,
            at_least=1,
            at_most=MAX_REPEATS,
            whole=True,
            why="timed steps per measured length; the fastest is kept",
        )
    o = side_cost(
        "original",
        original,
        sequence_lengths(original, template, tokenizer),
        opt.original_epochs,
        opt,
    )
    m = side_cost(
        "mosaic", mosaic, sequence_lengths(mosaic, template, tokenizer), opt.mosaic_epochs, opt
    )
    timing = None
    if model:
        timing = measure(model, opt.micro_batch_size, opt.max_length, repeats)
        price(o, timing)
        price(m, timing)
    return report(o, m, opt, timing)
