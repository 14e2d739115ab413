"""``mosaic-it cost ORIGINAL MOSAIC``: what training on mosaic data costs against the original."""

from __future__ import annotations

import argparse

from mosaic_it.apps.cost import render, run_cost
from mosaic_it.apps.cost_counting import CostOptions
from mosaic_it.budget.templates import TEMPLATE_NAMES
from mosaic_it.cli.registry import Arguments, Command
from mosaic_it.io.jsonfiles import write_json
from mosaic_it.io.outputs import Output, guard


def declare(a: Arguments) -> None:
    d = CostOptions()
    a.add("original", help="the original records (any input format)")
    a.add("mosaic", help="the mosaic made from them (e.g. mosaic-it mosaic --epochs 4)")
    a.add(
        "--original-epochs",
        type=int,
        default=d.original_epochs,
        help="epochs trained on the original (default %(default)s: FastChat)",
    )
    a.add(
        "--mosaic-epochs",
        type=int,
        default=d.mosaic_epochs,
        help="epochs trained on the mosaic (default %(default)s)",
    )
    a.add(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="sequences per optimizer step (default %(default)s)",
    )
    a.add(
        "--micro-batch-size",
        type=int,
        default=d.micro_batch_size,
        help="sequences per forward pass (default %(default)s)",
    )
    a.add(
        "--max-length",
        type=int,
        default=d.max_length,
        help="padded length and packing row length (default %(default)s)",
    )
    a.add(
        "--template",
        choices=TEMPLATE_NAMES,
        default="vicuna",
        help="chat template of the training sequence the lengths count, as mosaic "
        "--template (default %(default)s)",
    )
    a.add("--tokenizer", default=None, help="tokenizer for the counts (default: bundled)")
    a.add("--seed", type=int, default=d.seed, help="batch order seed (default %(default)s)")
    a.add(
        "--model",
        default="builtin:tiny-llama",
        help="model whose steps are timed (default %(default)s, on CPU)",
    )
    a.add(
        "--measure-repeats",
        type=int,
        default=3,
        help="timed steps per measured length (default %(default)s)",
    )
    a.add("--no-time", action="store_true", help="counts only, no timing (no torch needed)")
    a.add("--json", metavar="FILE", help="also write the figures as JSON")


def run(args: argparse.Namespace) -> int:
    with guard(
        {
            "ORIGINAL": args.original,
            "MOSAIC": args.mosaic,
            "--tokenizer": args.tokenizer,
            "--model": args.model,
        },
        [Output(args.json, "--json")],
    ):
        return _cost(args)


def _cost(args: argparse.Namespace) -> int:
    opt = CostOptions(
        args.original_epochs,
        args.mosaic_epochs,
        args.batch_size,
        args.micro_batch_size,
        args.max_length,
        args.seed,
    )
    result = run_cost(
        args.original,
        args.mosaic,
        opt,
        template=args.template,
        tokenizer=args.tokenizer,
        model=None if args.no_time else args.model,
        repeats=args.measure_repeats,
    )
    print(render(result))
    if args.json:
        write_json(args.json, result)
    return 0


COMMAND = Command(
    "cost",
    "compare the training cost of original and mosaic data under three padding regimes",
    declare,
    run,
    description="Sequences, tokens (padded to max length, dynamically, packed), optimizer "
    "steps and an extrapolated training time, original against mosaic.",
)
