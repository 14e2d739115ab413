"""``mosaic-it rules [--path]``: print the bundled rule pack (a starting point for --rules)."""

from __future__ import annotations

import argparse

from mosaic_it.cli.registry import Arguments, Command, detail
from mosaic_it.method.rulepack import default_rules_path


def declare(a: Arguments) -> None:
    a.add("--path", action="store_true", help="print its path instead of its content")


def run(args: argparse.Namespace) -> int:
    path = default_rules_path()
    detail(args, f"the bundled rule pack is {path}")
    print(path if args.path else path.read_text(encoding="utf-8"), end="\n" if args.path else "")
    return 0


COMMAND = Command(
    "rules", "print the bundled rule pack (a starting point for --rules)", declare, run
)
