"""``mosaic-it make-eval INPUT OUTPUT --n N``: a held-out evaluation set of verifiable mosaic
prompts; also the composition options it shares with ``make-rl-prompts``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mosaic_it.apps.eval_balance import EvalSet
from mosaic_it.apps.make_eval import check_composition, make_eval
from mosaic_it.budget.templates import TEMPLATE_NAMES, get_template
from mosaic_it.budget.tokenizer import load_tokenizer
from mosaic_it.cli.registry import Arguments, Command, say
from mosaic_it.errors import InputError
from mosaic_it.io.formats import FORMATS
from mosaic_it.io.jsonfiles import write_json, write_records
from mosaic_it.io.outputs import Output, guard
from mosaic_it.io.readers import EXAMPLE, InvalidRecord, example_path, read_records
from mosaic_it.method.rulepack import load_rule_pack


def declare(a: Arguments) -> None:
    a.add(
        "input",
        help="held-out records in any input format of mosaic-it mosaic "
        "(JSON list, JSONL, Parquet, a save_to_disk directory or a hub name; "
        "builtin:example); e.g. the held-out file of mosaic-it split",
    )
    a.add(
        "--input-format",
        choices=list(FORMATS),
        default=None,
        help="the input's record format (default: detected from the first record)",
    )
    a.add("--split", default=None, help="dataset split of a hub dataset or directory")
    a.add("output", help="where to write the evaluation set (.jsonl or .json)")
    declare_composition(
        a,
        "items",
        "chat template of chat_prompt and of the token budget, as mosaic --template; "
        "none: no chat_prompt",
    )


def declare_composition(a: Arguments, what: str, template_help: str) -> None:
    """The options of every command that composes balanced, verifiable mosaic prompts
    (make-eval, make-rl-prompts): how many ``what`` to make, their size, budget and pack."""
    a.add("--n", type=int, default=1000, help=f"{what} to make (default %(default)s)")
    a.add("--seed", type=int, default=42, help="random seed (default %(default)s)")
    a.add(
        "--max-instructions",
        type=int,
        default=10,
        help=f"largest instruction count M; {what} have 2..M (default %(default)s)",
    )
    a.add(
        "--template",
        choices=list(TEMPLATE_NAMES),
        default="vicuna",
        help=f"{template_help} (auto: the --tokenizer's own chat_template; default %(default)s)",
    )
    a.add(
        "--max-tokens",
        type=int,
        default=2048,
        help="largest rendered prompt + reference, in tokens (default %(default)s)",
    )
    a.add("--tokenizer", default=None, help="tokenizer for the budget (default: bundled)")
    a.add("--rules", default=None, help="a rule pack JSON (default: the bundled one)")
    a.add("--balance", metavar="FILE", help="write the balance table here as JSON")


def composition_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`mosaic_it.apps.make_eval.make_eval` the composition
    options give (the template and the tokenizer loaded); bad numbers are refused first."""
    check_composition(args.n, args.max_instructions, args.max_tokens, args.seed)
    return {
        "seed": args.seed,
        "max_instructions": args.max_instructions,
        "template": get_template(args.template, args.tokenizer),
        "max_tokens": args.max_tokens,
        "pack": load_rule_pack(args.rules),
        "tokenizer": load_tokenizer(args.tokenizer),
    }


def run(args: argparse.Namespace) -> int:
    source = example_path() if args.input == EXAMPLE else Path(args.input)
    with guard(
        {"INPUT": source, "--rules": args.rules, "--tokenizer": args.tokenizer},
        [Output(args.output, "OUTPUT"), Output(args.balance, "--balance")],
    ):
        return _make_eval(args, source)


def _make_eval(args: argparse.Namespace, source: Path) -> int:
    skipped: list[InvalidRecord] = []
    options = composition_options(args)
    records = list(
        read_records(source, invalid=skipped, input_format=args.input_format, split=args.split)
    )
    evalset = make_eval(records, args.n, **options)
    if not evalset.items:
        raise InputError(
            f"{source}: no evaluation item could be made from {len(records)} record(s) "
            f"({'; '.join(evalset.notes) or 'too few records, or none fits --max-tokens'}); "
            f"{args.output} was not written"
        )
    write_records(args.output, evalset.items)
    if args.balance:
        write_json(args.balance, evalset.balance())
    if skipped:
        say(args, f"warning: left out {len(skipped)} multi-turn record(s) of {source}")
    report_composition(
        evalset,
        args,
        f"wrote {len(evalset.items)} of {evalset.asked} evaluation items to {args.output}",
    )
    return 0


def report_composition(evalset: EvalSet, args: argparse.Namespace, wrote: str) -> None:
    """The notes of a composition, what was written and the balance table (not with
    ``--quiet``)."""
    for note in evalset.notes:
        say(args, f"warning: {note}")
    say(args, wrote)
    if not args.quiet:
        print(evalset.render_balance(), file=sys.stderr)


COMMAND = Command(
    "make-eval",
    "compose a balanced, verifiable evaluation set of mosaic prompts",
    declare,
    run,
    description="Compose a held-out evaluation set: prompts built only from verifiable "
    "layouts, balanced across strategies/rules and instruction counts 2..M. Each JSONL "
    "line: id, prompt, reference, mosaic (the spec) and, with a chat template, chat_prompt.",
)
