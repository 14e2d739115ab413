"""``mosaic-it score EVAL RESPONSES``: score model responses against an evaluation set."""

from __future__ import annotations

import argparse
import sys

from mosaic_it.apps.score import EXIT_BAD_INPUT, plot, read_eval, read_responses, score
from mosaic_it.cli.registry import Arguments, Command, detail
from mosaic_it.io.jsonfiles import write_json
from mosaic_it.io.outputs import Output, guard, is_stream


def declare(a: Arguments) -> None:
    a.add("eval", help="the evaluation set (JSONL from make-eval; '-': standard input)")
    a.add(
        "responses",
        help='model responses: JSONL of {"id": ..., "response": ...} (\'-\': standard input)',
    )
    a.add(
        "--mode",
        choices=["strict", "loose"],
        default="loose",
        help="loose: forgive markdown decoration, spacing, label wording and a "
        "framing first/last line, as a careful grader does; strict: labels and tags "
        "exactly as asked (default %(default)s)",
    )
    a.add(
        "--out",
        metavar="FILE",
        help="write the table (and every listed id) as JSON; '-': to standard output, the "
        "table then going to stderr",
    )
    a.add(
        "--plot",
        metavar="FILE.png",
        help="draw accuracy against instruction count (needs matplotlib)",
    )


def run(args: argparse.Namespace) -> int:
    with guard(
        {"EVAL": args.eval, "RESPONSES": args.responses},
        [Output(args.out, "--out", stream=True), Output(args.plot, "--plot")],
        stdin=("EVAL", "RESPONSES"),
    ):
        return _score(args)


def _score(args: argparse.Namespace) -> int:
    items, invalid = read_eval(args.eval)
    responses = read_responses(args.responses)
    report = score(items, responses, mode=args.mode, invalid=invalid)
    if is_stream(args.out):  # stdout holds the JSON alone
        if not args.quiet:
            print(report.render(), file=sys.stderr)
    else:
        print(report.render())
    detail(args, f"{report.eval_items} evaluation items, {len(responses)} responses")
    if args.out:
        write_json(args.out, report.to_dict())
    if args.plot:
        plot(report, args.plot)
    if invalid:
        print(
            f"mosaic-it: error: {len(invalid)} evaluation item(s) could not be read; the "
            "others were scored",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return 0


COMMAND = Command(
    "score",
    "score model responses against an evaluation set",
    declare,
    run,
    description="Join an evaluation set (make-eval) with model responses (JSONL of id and "
    "response) by id, verify every response and print sample- and instruction-level "
    "accuracy overall, per strategy, per rule and per instruction count.",
)
