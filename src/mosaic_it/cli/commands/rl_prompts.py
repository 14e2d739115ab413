"""``mosaic-it make-rl-prompts TRAIN OUTPUT --held-out HELD_OUT --n N``: prompt-only RL rows."""

from __future__ import annotations

import argparse
from pathlib import Path

from mosaic_it.apps.rl_prompts import CURRICULUM, make_curriculum, make_rl_prompts
from mosaic_it.cli.commands.make_eval import (
    composition_options,
    declare_composition,
    report_composition,
)
from mosaic_it.cli.registry import Arguments, Command, say
from mosaic_it.io.jsonfiles import write_json, write_records
from mosaic_it.io.outputs import Output, guard
from mosaic_it.io.readers import EXAMPLE, example_path, read_records


def declare(a: Arguments) -> None:
    a.add("input", help="training records, any format mosaic reads")
    a.add("output", help="where to write the rows (.jsonl or .json)")
    a.add(
        "--held-out",
        required=True,
        action="append",
        metavar="FILE",
        help="held-out records (the input of make-eval); their instructions are "
        "never used (repeatable)",
    )
    a.add(
        "--curriculum",
        action="store_true",
        help="write the rows in levels, easiest first, each row marked with its level: "
        + "; ".join(f"{lv.number}: {lv.what}" for lv in CURRICULUM)
        + " (--n shared equally)",
    )
    declare_composition(a, "rows", "chat template the token budget counts, as mosaic --template")


def run(args: argparse.Namespace) -> int:
    source = example_path() if args.input == EXAMPLE else Path(args.input)
    inputs = {"INPUT": source, "--rules": args.rules, "--tokenizer": args.tokenizer}
    inputs.update({f"--held-out {path}": path for path in args.held_out})
    with guard(inputs, [Output(args.output, "OUTPUT"), Output(args.balance, "--balance")]):
        return _make_rl_prompts(args, source)


def _make_rl_prompts(args: argparse.Namespace, source: Path) -> int:
    options = composition_options(args)
    records = list(read_records(source))
    held_out = [r for path in args.held_out for r in read_records(Path(path))]
    if args.curriculum:
        return _curriculum(args, records, held_out)
    rows, evalset, dropped = make_rl_prompts(records, held_out, args.n, **options)
    write_records(args.output, rows)
    if args.balance:
        write_json(args.balance, {**evalset.balance(), "held_out_left_out": dropped})
    report_composition(
        evalset,
        args,
        f"wrote {len(rows)} of {evalset.asked} RL prompts to {args.output} from "
        f"{len(records) - dropped} training records ({dropped} left out: their instruction is "
        "held out)",
    )
    return 0


def _curriculum(args: argparse.Namespace, records: list, held_out: list) -> int:
    rows, levels, dropped = make_curriculum(records, held_out, args.n, **composition_options(args))
    write_records(args.output, rows)
    if args.balance:
        balance = [{"level": lv.number, **evalset.balance()} for lv, evalset in levels]
        write_json(args.balance, {"levels": balance, "held_out_left_out": dropped})
    for level, evalset in levels:
        report_composition(
            evalset,
            args,
            f"level {level.number} ({level.what}): {len(evalset.items)} of {evalset.asked} rows",
        )
    say(
        args,
        f"wrote {len(rows)} RL prompts in {len(levels)} levels to {args.output} "
        f"from {len(records) - dropped} training records ({dropped} left out: their "
        "instruction is held out)",
    )
    return 0


COMMAND = Command(
    "make-rl-prompts",
    "compose verifiable mosaic prompts for RL (TRL prompt-only rows with their spec)",
    declare,
    run,
    description="Compose prompt-only RL rows from training records, with the evaluation "
    "set's layouts, balance and budget: each JSONL line holds id, prompt (messages), mosaic "
    "(the spec the rewards grade against) and reference. Records whose instruction is "
    "among the --held-out records are never used.",
)
