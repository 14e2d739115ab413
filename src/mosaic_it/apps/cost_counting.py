"""Counting for ``mosaic-it cost``: exact sequence lengths of a data file, and the rows,
tokens and optimizer steps of training on them under each padding regime (see
:mod:`mosaic_it.apps.cost`)."""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from mosaic_it.budget.templates import get_template
from mosaic_it.budget.tokenizer import load_tokenizer
from mosaic_it.errors import InputError
from mosaic_it.io.readers import read_records
from mosaic_it.limits import MAX_TRAIN_EPOCHS, bound

REGIMES = ("pad_to_max", "dynamic_batch", "dynamic_micro", "packing")


@dataclass(frozen=True)
class CostOptions:
    original_epochs: int = 3  # FastChat's default
    mosaic_epochs: int = 1  # one pass over a mosaic made with --epochs 4
    batch_size: int = 128  # sequences (or packed rows) per optimizer step
    micro_batch_size: int = 4  # sequences per forward pass
    max_length: int = 2048  # FastChat's model_max_length
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("original_epochs", "mosaic_epochs"):
            bound(
                f"--{name.replace('_', '-')}",
                getattr(self, name),
                at_least=1,
                at_most=MAX_TRAIN_EPOCHS,
                whole=True,
                why="each epoch's batches are drawn",
            )
        for name in ("batch_size", "micro_batch_size", "max_length"):
            bound(f"--{name.replace('_', '-')}", getattr(self, name), at_least=1, whole=True)
        bound("--seed", self.seed, whole=True)


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
