"""Hold records out of training: ``mosaic-it split INPUT TRAIN HELDOUT --held-out N``.

A seeded draw of N records (or a fraction of them) goes to the held-out file, the rest to the
training file, each in the input's order and format (the records are copied as they are), so
that ``make-eval`` builds its evaluation set from records the model was not trained on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from mosaic_it.io.files import iter_raw, write_records
from mosaic_it.io.outputs import Output, guard
from mosaic_it.rng import Rng


def held_out_count(total: int, held_out: float) -> int:
    """``held_out`` as a count: a whole number is a count, a number below 1 a fraction."""
    if held_out <= 0:
        raise ValueError(f"--held-out must be positive, got {held_out:g}")
    count = round(total * held_out) if held_out < 1 else int(held_out)
    if held_out >= 1 and held_out != int(held_out):
        raise ValueError(
            f"--held-out is a count (a whole number) or a fraction below 1, got {held_out:g}"
        )
    if not 0 < count < total:
        raise ValueError(
            f"--held-out {held_out:g} of {total} records leaves "
            f"{'nothing to hold out' if count <= 0 else 'nothing to train on'}"
        )
    return count


def split_indices(total: int, count: int, seed: int) -> set[int]:
    """The indices of the ``count`` held-out records among ``total``: the same for one seed."""
    order = list(range(total))
    Rng(seed, "split").shuffle(order)
    return set(order[:count])


def split(
    source: str,
    train: str,
    held_out_path: str,
    held_out: float,
    seed: int,
    data_split: str | None = None,
) -> tuple[int, int]:
    """Write the two files; returns (training records, held-out records). The command line
    checks and locks the paths first (:func:`mosaic_it.io.outputs.guard`)."""
    objects: list[Any] = [obj for _, _, obj in iter_raw(source, data_split)]
    held = split_indices(len(objects), held_out_count(len(objects), held_out), seed)
    n_train = write_records(train, (o for i, o in enumerate(objects) if i not in held))
    n_held = write_records(held_out_path, (o for i, o in enumerate(objects) if i in held))
    return n_train, n_held


def add_parser(sub: Any) -> Callable[[argparse.Namespace], int]:
    """Register the subcommand on ``sub`` (argparse subparsers); returns its handler."""
    p = sub.add_parser(
        "split",
        help="hold records out of training: a seeded split into a training and a held-out file",
        description="Split a dataset into a training file and a held-out file (records copied "
        "as they are, in their order) by a seeded draw, so that an evaluation set made with "
        "make-eval from the held-out file shares no record with the training data.",
    )
    p.add_argument("input", help="records in any input format (JSON, JSONL, Parquet, ...)")
    p.add_argument("train", help="where to write the training records (.json or .jsonl)")
    p.add_argument(
        "held_out", metavar="held-out", help="where to write the held-out records (.json or .jsonl)"
    )
    p.add_argument(
        "--held-out",
        dest="count",
        type=float,
        required=True,
        help="records to hold out: a count (200) or a fraction below 1 (0.1)",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default %(default)s)")
    p.add_argument("--split", default=None, help="dataset split of a hub dataset or directory")
    p.set_defaults(handler=run)
    return run


def run(args: argparse.Namespace) -> int:
    outputs = [Output(args.train, "TRAIN"), Output(args.held_out, "HELD-OUT")]
    with guard({"INPUT": args.input}, outputs):
        n_train, n_held = split(
            args.input, args.train, args.held_out, args.count, args.seed, args.split
        )
    print(
        f"mosaic-it: wrote {n_train} training records to {args.train} and {n_held} held-out "
        f"records to {args.held_out}",
        file=sys.stderr,
    )
    return 0
