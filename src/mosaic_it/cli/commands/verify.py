"""``mosaic-it verify INPUT [OUTPUT]``: check every row's text against its own ``mosaic`` spec.

Rows stream through one at a time, so ``-`` works at both ends::

    mosaic-it mosaic builtin:example - | mosaic-it verify - - --field output
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

from mosaic_it.apps.score import EXIT_BAD_INPUT
from mosaic_it.cli.registry import Arguments, Command, detail, say
from mosaic_it.io.jsonfiles import write_records
from mosaic_it.io.outputs import STREAM, Output, guard
from mosaic_it.io.readers import iter_raw
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.records import SpecError
from mosaic_it.verifier.checks import verify

INVALID = "invalid"  # the status of a row that could not be checked (no spec, no text)


def declare(a: Arguments) -> None:
    a.add(
        "input",
        help="rows that each hold a 'mosaic' spec and the text to check: a model's responses "
        "joined with their prompts, or mosaic's own output (any format mosaic reads; '-': "
        "JSONL on standard input)",
    )
    a.add(
        "output",
        nargs="?",
        default=STREAM,
        help="where to write one verdict per row, as JSONL (default '-': standard output)",
    )
    a.add(
        "--field",
        default=None,
        help="the field that holds the text to check (default: 'response' where a row has "
        "one, else 'output', the sample's own answer)",
    )
    a.add(
        "--mode",
        choices=["strict", "loose"],
        default="loose",
        help="as score --mode (default %(default)s)",
    )
    a.add("--rules", default=None, help="the rule pack of the specs (default: the bundled one)")


def run(args: argparse.Namespace) -> int:
    with guard(
        {"INPUT": args.input, "--rules": args.rules},
        [Output(args.output, "OUTPUT", stream=True)],
        stdin=("INPUT",),
    ):
        return _verify(args)


def _verify(args: argparse.Namespace) -> int:
    pack = load_rule_pack(args.rules)
    counts: Counter[str] = Counter()

    def verdicts() -> Iterator[dict[str, Any]]:
        for index, where, row in iter_raw(args.input):
            verdict = _verdict(args, pack, index, where, row)
            counts[verdict["status"]] += 1
            if verdict["status"] == INVALID:
                print(f"mosaic-it verify: error: {verdict['error']}", file=sys.stderr)
            elif verdict["status"] == "fail":
                failed = "; ".join(
                    f"{c['name']}: {c['reason']}" if c.get("reason") else c["name"]
                    for c in verdict["checks"]
                    if c["passed"] is False
                )
                detail(args, f"{where}: fail: {failed}")
            yield verdict

    write_records(args.output, verdicts())
    rows = sum(counts.values())
    say(
        args,
        f"{rows} rows: {counts['pass']} pass, {counts['fail']} fail, "
        f"{counts['not_verifiable']} not verifiable"
        + (f", {counts[INVALID]} could not be checked" if counts[INVALID] else "")
        + ("" if args.output == STREAM else f"; verdicts in {args.output}"),
    )
    return EXIT_BAD_INPUT if counts[INVALID] else 0


def _verdict(args: argparse.Namespace, pack: Any, index: int, where: str, row: Any) -> dict:
    """One row's verdict, or an ``invalid`` one that says why it could not be checked."""
    key = row.get("id", index) if isinstance(row, dict) else index
    try:
        if not isinstance(row, dict):
            raise SpecError(f"expected an object, got {type(row).__name__}")
        field = args.field or ("response" if "response" in row else "output")
        text = row.get(field)
        if not isinstance(text, str):
            raise SpecError(f"field {field!r}: expected a text, got {type(text).__name__}")
        if "mosaic" not in row:
            raise SpecError("field 'mosaic' (the spec): missing")
        prompt = row.get("prompt", row.get("instruction"))
        references = row.get("references")
        verdict = verify(
            row["mosaic"],
            text,
            mode=args.mode,
            pack=pack,
            prompt=prompt if isinstance(prompt, str) else None,
            references=references if isinstance(references, list) else None,
        )
    except (SpecError, TypeError, ValueError) as exc:
        return {"id": key, "status": INVALID, "error": f"{where}: {exc}"}
    return {"id": key, **verdict.to_dict()}


COMMAND = Command(
    "verify",
    "check every row's text against its own mosaic spec, one JSONL verdict per row",
    declare,
    run,
    description="Verify each row's text (a model's response, or the sample's own output) "
    "against the 'mosaic' spec in the same row: count, labels, order, tags, skipped "
    "instructions, nothing extra, and the content when the row holds its references. Rows "
    "stream through, so INPUT and OUTPUT may be '-'. Exit status 2 when a row could not be "
    "checked (the others are).",
)
