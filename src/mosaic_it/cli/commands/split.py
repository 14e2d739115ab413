"""``mosaic-it split INPUT TRAIN HELD-OUT --held-out N``: hold records out of training."""

from __future__ import annotations

import argparse

from mosaic_it.apps.split import split
from mosaic_it.cli.registry import Arguments, Command, detail, say
from mosaic_it.io.outputs import Output, guard


def declare(a: Arguments) -> None:
    a.add("input", help="records in any input format (JSON, JSONL, Parquet, ...)")
    a.add("train", help="where to write the training records (.json or .jsonl)")
    a.add(
        "held_out", metavar="held-out", help="where to write the held-out records (.json or .jsonl)"
    )
    a.add(
        "--held-out",
        dest="count",
        type=float,
        required=True,
        help="records to hold out: a count (200) or a fraction below 1 (0.1)",
    )
    a.add("--seed", type=int, default=42, help="random seed (default %(default)s)")
    a.add("--split", default=None, help="dataset split of a hub dataset or directory")


def run(args: argparse.Namespace) -> int:
    outputs = [Output(args.train, "TRAIN"), Output(args.held_out, "HELD-OUT")]
    with guard({"INPUT": args.input}, outputs):
        n_train, n_held = split(
            args.input, args.train, args.held_out, args.count, args.seed, args.split
        )
    say(
        args,
        f"wrote {n_train} training records to {args.train} and {n_held} held-out "
        f"records to {args.held_out}",
    )
    detail(args, f"the held-out records were drawn with --seed {args.seed}")
    return 0


COMMAND = Command(
    "split",
    "hold records out of training: a seeded split into a training and a held-out file",
    declare,
    run,
    description="Split a dataset into a training file and a held-out file (records copied "
    "as they are, in their order) by a seeded draw, so that an evaluation set made with "
    "make-eval from the held-out file shares no record with the training data.",
)
