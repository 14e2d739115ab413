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

import bisect
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mosaic_it.budget.templates import get_template
from mosaic_it.budget.tokenizer import load_tokenizer
from mosaic_it.io.files import InputError, read_records

REGIMES = ("pad_to_max", "dynamic_batch", "dynamic_micro", "packing")
REGIME_LABELS = {
    "pad_to_max": "pad to max length",
    "dynamic_batch": "dynamic padding per batch",
    "dynamic_micro": "dynamic padding per micro-batch",
    "packing": "packing (best-fit decreasing)",
}
SEED_CLAIM = 0.80


@dataclass(frozen=True)
class CostOptions:
    original_epochs: int = 3  # FastChat's default
    mosaic_epochs: int = 1  # one pass over a mosaic made with --epochs 4
    batch_size: int = 128  # sequences (or packed rows) per optimizer step
    micro_batch_size: int = 4  # sequences per forward pass
    max_length: int = 2048  # FastChat's model_max_length
    seed: int = 42

    def __post_init__(self) -> None:
        for name in (
            "original_epochs",
            "mosaic_epochs",
            "batch_size",
            "micro_batch_size",
            "max_length",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")


@dataclass
class Regime:
    """One padding regime on one side: per-epoch figures and the totals over all epochs."""

    rows: int  # sequences, or packed rows
    tokens: int  # tokens processed, padding included, all epochs
    steps: int  # optimizer steps, all epochs
    seconds: float | None = None  # estimated training time, all epochs
    micro_shapes: list[tuple[int, int]] = field(default_factory=list, repr=False)  # (rows, length)


@dataclass
class Side:
    name: str
    path: str
    epochs: int
    sequences: int  # per epoch
    real_tokens: int  # per epoch
    truncated: int
    longest: int
    regimes: dict[str, Regime] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r in d["regimes"].values():
            r.pop("micro_shapes", None)
        d["real_tokens_all_epochs"] = self.real_tokens * self.epochs
        d["sequences_all_epochs"] = self.sequences * self.epochs
        return d


# --------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------


def sequence_lengths(
    path: str, template: str = "vicuna", tokenizer: str | None = None
) -> list[int]:
    """Exact token counts of the training sequences of a data file (any input format)."""
    tok = load_tokenizer(tokenizer)
    tmpl = get_template(template, tokenizer)
    items = [(r.prompt, r.output, r.system) for r in read_records(path)]
    if not items:
        raise InputError(f"{path}: no records")
    out: list[int] = []
    for start in range(0, len(items), 8192):
        out.extend(tmpl.count_batch(tok, items[start : start + 8192]))
    return out


def dynamic_shapes(lengths: list[int], group: int, seed: int, epoch: int) -> list[tuple[int, int]]:
    """(rows, padded length) of each group of a seeded shuffle, padded to its longest."""
    order = list(range(len(lengths)))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return [
        (len(chunk), max(lengths[i] for i in chunk))
        for chunk in (order[s : s + group] for s in range(0, len(order), group))
    ]


def pack_bfd(lengths: list[int], capacity: int) -> list[int]:
    """Best-fit-decreasing bin packing; returns the filled length of each row."""
    free: list[int] = []  # sorted remaining capacities of the open rows
    for n in sorted(lengths, reverse=True):
        i = bisect.bisect_left(free, n)
        if i == len(free):
            bisect.insort(free, capacity - n)
        else:
            rest = free.pop(i) - n
            bisect.insort(free, rest)
    return [capacity - f for f in free]


def side_cost(name: str, path: str, lengths: list[int], epochs: int, opt: CostOptions) -> Side:
    L, B, m = opt.max_length, opt.batch_size, opt.micro_batch_size
    cut = [min(n, L) for n in lengths]
    side = Side(
        name, path, epochs, len(cut), sum(cut), sum(1 for n in lengths if n > L), max(lengths)
    )
    n = len(cut)
    steps = math.ceil(n / B) * epochs

    micro = [(min(m, n - s), L) for s in range(0, n, m)]
    side.regimes["pad_to_max"] = Regime(n, n * L * epochs, steps, micro_shapes=micro * epochs)

    shapes_b: list[tuple[int, int]] = []
    shapes_m: list[tuple[int, int]] = []
    for e in range(epochs):
        for rows, length in dynamic_shapes(cut, B, opt.seed, e):
            shapes_b.extend((min(m, rows - s), length) for s in range(0, rows, m))
        shapes_m.extend(dynamic_shapes(cut, m, opt.seed, e))
    side.regimes["dynamic_batch"] = Regime(
        n, sum(r * x for r, x in shapes_b), steps, micro_shapes=shapes_b
    )
    side.regimes["dynamic_micro"] = Regime(
        n, sum(r * x for r, x in shapes_m), steps, micro_shapes=shapes_m
    )

    packed = pack_bfd(cut, L)
    rows = len(packed)
    micro_p = [(min(m, rows - s), L) for s in range(0, rows, m)]
    side.regimes["packing"] = Regime(
        rows, rows * L * epochs, math.ceil(rows / B) * epochs, micro_shapes=micro_p * epochs
    )
    return side


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


@dataclass
class Timing:
    model: str
    device: str
    micro_batch_size: int
    lengths: list[int]  # padded lengths measured
    seconds: list[float]  # fastest forward+backward of a full micro-batch at each length
    optimizer_step: float
    repeats: int
    load_average: float | None

    def micro_seconds(self, rows: int, length: int) -> float:
        """Interpolated (linear in length, proportional in rows) time of one micro-batch."""
        xs, ys = self.lengths, self.seconds
        if length <= xs[0]:
            t = ys[0] * length / xs[0]
        elif length >= xs[-1]:
            t = ys[-1] * length / xs[-1]
        else:
            j = bisect.bisect_left(xs, length)
            x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
            t = y0 + (y1 - y0) * (length - x0) / (x1 - x0)
        return t * rows / self.micro_batch_size


def measure(
    model_spec: str, micro: int, max_length: int, repeats: int = 3, points: int = 4
) -> Timing:
    """Time ``mosaic-it train``'s own step at ``points`` lengths up to ``max_length``.

    The trainer is the one ``mosaic-it train`` builds (TRL's SFTTrainer, same precision, loss on
    the completion, TRL's token metrics), and a micro-batch is its ``training_step`` (forward,
    loss, backward) on a batch from its own collator: random token ids (the time depends on the
    shape, not the text) with the first quarter of each sequence masked as a prompt. The
    optimizer step is the trainer's AdamW with gradient clipping, as ``Trainer`` runs it.
    """
    import tempfile

    from mosaic_it.apps.models import ModelError, require_torch
    from mosaic_it.apps.train import TrainConfig, prepare_run

    try:
        torch = require_torch()
    except ModelError as exc:
        raise ModelError(f"{exc}; or pass --no-time for the counts alone") from None
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    # a short length too, so that the fixed cost of a step shows in short batches' prices
    fractions = [1 / 16] + [(k + 1) / (points - 1) for k in range(points - 1)]
    lengths = sorted({max(8, int(max_length * f)) for f in fractions})
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="mosaic-it-cost-") as tmp:
        data = Path(tmp) / "one.jsonl"
        data.write_text(json.dumps({"instruction": "x", "output": "y"}) + "\n", encoding="utf-8")
        config = TrainConfig(
            data=str(data),
            output_dir=str(Path(tmp) / "out"),
            model=model_spec,
            batch_size=micro,
            micro_batch_size=micro,
            max_length=max_length,
        )
        trainer = prepare_run(config).trainer
        model = trainer.model
        model.train()
        trainer.create_optimizer()
        optimizer = trainer.optimizer
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop otherwise
        vocab = model.get_input_embeddings().num_embeddings

        def step(length: int) -> float:
            ids = torch.randint(0, vocab, (micro, length), generator=gen).tolist()
            cut = length // 4
            batch = trainer.data_collator(
                [{"input_ids": row, "labels": [-100] * cut + row[cut:]} for row in ids]
            )
            batch = trainer._prepare_inputs(batch)
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.training_step(model, batch, num_items_in_batch=None)
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        try:
            step(lengths[0])  # warm-up
            samples: dict[int, list[float]] = {n: [] for n in lengths}
            # interleaved, so load changes hit every length alike; the fastest of the repeats
            # is kept: on a shared machine other processes only ever add time
            for _ in range(repeats):
                for n in lengths:
                    samples[n].append(step(n))
            opt_times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=False)
                if cuda:
                    torch.cuda.synchronize()
                opt_times.append(time.perf_counter() - t0)
            opt_seconds = min(opt_times)
        except torch.OutOfMemoryError as exc:
            raise ModelError(
                f"out of memory measuring micro-batches of {micro} x {max_length} tokens on "
                f"{device} ({str(exc).splitlines()[0][:120]}); lower --micro-batch-size"
            ) from None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return Timing(
        model_spec,
        device,
        micro,
        lengths,
        [min(samples[n]) for n in lengths],
        opt_seconds,
        repeats,
        load,
    )


def price(side: Side, timing: Timing) -> None:
    for regime in side.regimes.values():
        compute = sum(timing.micro_seconds(r, n) for r, n in regime.micro_shapes)
        regime.seconds = compute + regime.steps * timing.optimizer_step


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
            a, b = original.regimes[key].seconds or 0.0, mosaic.regimes[key].seconds or 0.0
            verdict[f"time_{key}"] = round(_reduction(a, b), 4)
    return {
        "options": asdict(opt),
        "original": original.to_dict(),
        "mosaic": mosaic.to_dict(),
        "timing": asdict(timing) if timing else None,
        "reduction": verdict,
        "table": rows,
        "claim": claim_lines(verdict, original, mosaic),
    }


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
