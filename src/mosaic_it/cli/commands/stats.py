"""``mosaic-it stats DATA --report report.html [--png DIR]``: a look at a mosaic dataset."""

from __future__ import annotations

import argparse

from mosaic_it.apps.stats import collect
from mosaic_it.apps.stats_report import write_report
from mosaic_it.budget.templates import TEMPLATE_NAMES
from mosaic_it.cli.registry import Arguments, Command, say
from mosaic_it.io.outputs import Output, guard


def declare(a: Arguments) -> None:
    a.add("data", help="a mosaic dataset (any output format), or original records")
    a.add("--report", metavar="FILE.html", help="write the HTML report here")
    a.add("--png", metavar="DIR", help="write every plot as a PNG file in DIR")
    a.add("--stats", metavar="FILE", help="the summary JSON of mosaic-it mosaic --stats")
    a.add(
        "--max-tokens",
        type=int,
        default=None,
        help="the budget line (default: from --stats, else 2048)",
    )
    a.add("--tokenizer", default=None, help="counts data without specs (default: bundled)")
    a.add(
        "--template",
        choices=TEMPLATE_NAMES,
        default="vicuna",
        help="chat template of those counts, as mosaic --template (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    with guard(
        {"DATA": args.data, "--stats": args.stats, "--tokenizer": args.tokenizer},
        [Output(args.report, "--report"), Output(args.png, "--png", "dir")],
    ):
        return _stats(args)


def _stats(args: argparse.Namespace) -> int:
    stats = collect(
        args.data,
        summary_path=args.stats,
        budget=args.max_tokens,
        tokenizer=args.tokenizer,
        template=args.template,
    )
    width = max(len(k) for k, _ in stats.overview())
    for key, value in stats.overview():
        print(f"{key:{width}}  {value}")
    for path in write_report(stats, args.report, args.png):
        say(args, f"wrote {path}")
    return 0


COMMAND = Command(
    "stats",
    "plots and counts of a mosaic dataset, as one self-contained HTML page",
    declare,
    run,
    description="Instructions and tokens per sample, strategy/rule/format mix and what was "
    "left out; plots embedded in one HTML file (needs matplotlib).",
)
