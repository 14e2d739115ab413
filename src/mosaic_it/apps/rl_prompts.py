"""Prompt-only rows for reinforcement learning: ``mosaic-it make-rl-prompts``.

``mosaic-it make-rl-prompts TRAIN OUTPUT --held-out HELD_OUT --n N`` composes N verifiable mosaic
prompts from training records with the evaluation set's own composer (:func:`evalset.make_eval`:
the same checkable layouts, the same balance over strategy/rule and instruction count, the same
token budget) and writes them in TRL's conversational prompt-only shape::

    {"id": ..., "prompt": [{"role": "user", "content": ...}], "mosaic": {...}, "reference": ...}

``mosaic`` is the spec the rewards of :mod:`mosaic_it.rewards` grade against; ``reference`` is
the composed answer (for a content check). A record whose instruction (with its input and system
prompt) also stands in the held-out records is never used, so RL never sees an evaluation
instruction; how many were left out is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mosaic_it.apps.make_eval import EvalSet, add_composition_options, make_eval
from mosaic_it.budget.tokenizer import load_tokenizer
from mosaic_it.io.files import (
    EXAMPLE,
    InputError,
    example_path,
    read_records,
    write_json,
    write_records,
)
from mosaic_it.io.outputs import Output, guard
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.records import Record


def _key(record: Record) -> tuple[str, str]:
    return (" ".join(record.system.split()), " ".join(record.prompt.split()))


def without_held_out(
    records: Iterable[Record], held_out: Iterable[Record]
) -> tuple[list[Record], int]:
    """Training records whose instruction is not among the held-out ones; and how many were."""
    banned = {_key(r) for r in held_out}
    kept, dropped = [], 0
    for r in records:
        if _key(r) in banned:
            dropped += 1
        else:
            kept.append(r)
    return kept, dropped


def rl_row(item: dict[str, Any]) -> dict[str, Any]:
    """An evaluation item as a TRL prompt-only row (prompt as messages)."""
    messages = [{"role": "system", "content": item["system"]}] if item.get("system") else []
    messages.append({"role": "user", "content": item["prompt"]})
    return {
        "id": item["id"].replace("eval-", "rl-", 1),
        "prompt": messages,
        "mosaic": item["mosaic"],
        "reference": item["reference"],
    }


def make_rl_prompts(
    records: Sequence[Record],
    held_out: Sequence[Record],
    n: int,
    **options: Any,
) -> tuple[list[dict[str, Any]], EvalSet, int]:
    """(rows, the balance of what was composed, training records left out as held out).

    ``options`` are those of :func:`evalset.make_eval` (seed, max_instructions, template,
    max_tokens, pack, tokenizer): the rows are composed exactly as an evaluation set is."""
    kept, dropped = without_held_out(records, held_out)
    if not kept:
        raise InputError(
            "every training record is among the held-out records: nothing to "
            "compose RL prompts from"
        )
    evalset = make_eval(kept, n, **options)
    return [rl_row(item) for item in evalset.items], evalset, dropped


# ---------------------------------------------------------------------------- command line


def add_parser(sub: Any) -> Callable[[argparse.Namespace], int]:
    """Register the subcommand on ``sub`` (argparse subparsers); returns its handler."""
    p = sub.add_parser(
        "make-rl-prompts",
        help="compose verifiable mosaic prompts for RL (TRL prompt-only rows with their spec)",
        description="Compose prompt-only RL rows from training records, with the evaluation "
        "set's layouts, balance and budget: each JSONL line holds id, prompt (messages), mosaic "
        "(the spec the rewards grade against) and reference. Records whose instruction is "
        "among the --held-out records are never used.",
    )
    p.add_argument("input", help="training records, any format mosaic reads")
    p.add_argument("output", help="where to write the rows (.jsonl or .json)")
    p.add_argument(
        "--held-out",
        required=True,
        action="append",
        metavar="FILE",
        help="held-out records (the input of make-eval); their instructions are "
        "never used (repeatable)",
    )
    add_composition_options(p, "rows", "chat template the token budget counts")
    return run


def run(args: argparse.Namespace) -> int:

    source = example_path() if args.input == EXAMPLE else Path(args.input)
    inputs = {"INPUT": source, "--rules": args.rules, "--tokenizer": args.tokenizer}
    inputs.update({f"--held-out {path}": path for path in args.held_out})
    with guard(inputs, [Output(args.output, "OUTPUT"), Output(args.balance, "--balance")]):
        return _make_rl_prompts(args, source)


def _make_rl_prompts(args: argparse.Namespace, source: Path) -> int:
    records = list(read_records(source))
    held_out = [r for path in args.held_out for r in read_records(Path(path))]
    rows, evalset, dropped = make_rl_prompts(
        records,
        held_out,
        args.n,
        seed=args.seed,
        max_instructions=args.max_instructions,
        template=args.template,
        max_tokens=args.max_tokens,
        pack=load_rule_pack(args.rules),
        tokenizer=load_tokenizer(args.tokenizer),
    )
    write_records(args.output, rows)
    if args.balance:
        write_json(args.balance, {**evalset.balance(), "held_out_left_out": dropped})
    for note in evalset.notes:
        print(f"mosaic-it: warning: {note}", file=sys.stderr)
    if not args.quiet:
        print(
            f"mosaic-it: wrote {len(rows)} of {evalset.asked} RL prompts to {args.output} "
            f"from {len(records) - dropped} training records ({dropped} left out: their "
            "instruction is held out)",
            file=sys.stderr,
        )
        print(evalset.render_balance(), file=sys.stderr)
    return 0
