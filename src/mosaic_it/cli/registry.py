"""The command registry: every subcommand declares its arguments and its handler once.

A command is a :class:`Command` in its own module of :mod:`mosaic_it.cli.commands`; the parser
is built from the registry (:func:`mosaic_it.cli.main.build_parser`), and each argument a command
declares is kept (:class:`Arguments`), so that recipes can read and check options without
reaching into argparse's internals.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[argparse.Namespace], int]


class Arguments:
    """Where a command declares its arguments: ``add`` is argparse's ``add_argument`` on the
    command's parser (or one of its groups), and every action it makes is kept in ``actions``."""

    def __init__(self, parser: Any, actions: list[argparse.Action] | None = None) -> None:
        self.parser = parser
        self.actions: list[argparse.Action] = [] if actions is None else actions

    def add(self, *flags: str, **options: Any) -> argparse.Action:
        action = self.parser.add_argument(*flags, **options)
        self.actions.append(action)
        return action

    def group(self, title: str) -> Arguments:
        """A titled section of the command's help; its arguments are kept with the others."""
        return Arguments(self.parser.add_argument_group(title), self.actions)

    def exclusive(self) -> Arguments:
        """Arguments of which at most one may be given."""
        return Arguments(self.parser.add_mutually_exclusive_group(), self.actions)


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, help texts, arguments and handler.

    ``prepare(args, arguments, argv)`` runs after parsing and before the handler, inside the
    error handling of :func:`mosaic_it.cli.main.main` (``mosaic`` merges its ``--config``
    recipe there); ``argv`` is the command's own part of the command line.
    """

    name: str
    help: str
    declare: Callable[[Arguments], None]
    handler: Handler
    description: str | None = None
    prepare: Callable[[argparse.Namespace, Arguments, list[str]], None] | None = None
    # keyword arguments of the subparser beyond help and description
    parser_options: dict[str, Any] = field(default_factory=dict)


def declare_verbosity(a: Arguments) -> None:
    """``-q/--quiet`` and ``-v/--verbose``, which every command has, with one meaning each: the
    command line adds them to every command (:func:`mosaic_it.cli.main.build`); a command does
    not declare them itself. What a command prints on stdout (its result: a table, a report,
    rows written to ``-``) is the same at every level; only stderr changes."""
    level = a.group("how much is said on stderr").exclusive()
    level.add(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing on stderr but errors: no progress, summary, note or warning",
    )
    level.add(
        "-v",
        "--verbose",
        action="store_true",
        help="also print the options in effect at the start, the time taken at the end, and "
        "what the command can say in detail (ids, paths, per-item progress)",
    )


def _prefix(args: argparse.Namespace) -> str:
    command = getattr(args, "command", None)
    return f"mosaic-it {command}" if command else "mosaic-it"


def say(args: argparse.Namespace, text: str) -> None:
    """A progress line, summary, note or warning on stderr (``mosaic-it COMMAND: text``); not
    printed with ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(f"{_prefix(args)}: {text}", file=sys.stderr, flush=True)


def detail(args: argparse.Namespace, text: str) -> None:
    """A line on stderr printed only with ``--verbose``."""
    if getattr(args, "verbose", False):
        print(f"{_prefix(args)}: {text}", file=sys.stderr, flush=True)


# the notes of the layers under the command line (training, model loading) are logged under
# this name: on stderr while a command runs, at the level -q/-v give
NOTES = logging.getLogger("mosaic_it")


class _Stderr(logging.StreamHandler):
    """The stderr of the moment (a test may have replaced it since the handler was made)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextmanager
def notes_on_stderr(args: argparse.Namespace) -> Iterator[None]:
    """The notes of :data:`NOTES` on stderr for the block: errors alone with ``--quiet``,
    details too with ``--verbose``, else warnings and notes; as they were after."""
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = NOTES.level, NOTES.propagate
    NOTES.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    NOTES.propagate = False
    NOTES.addHandler(handler)
    try:
        yield
    finally:
        NOTES.removeHandler(handler)
        NOTES.setLevel(saved[0])
        NOTES.propagate = saved[1]


def run_command(command: Command, arguments: Arguments, args: argparse.Namespace) -> int:
    """Run a command's handler, with the notes of the layers under it at the level -q/-v give;
    with ``--verbose``, say the options in effect first and the time taken last (on every
    command alike)."""
    with notes_on_stderr(args):
        return _run(command, arguments, args)


def _run(command: Command, arguments: Arguments, args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        return command.handler(args)
    shown = {
        action.dest: getattr(args, action.dest)
        for action in arguments.actions
        if action.dest not in ("help", "quiet", "verbose") and hasattr(args, action.dest)
    }
    detail(args, "options: " + " ".join(f"{k}={v!r}" for k, v in shown.items()))
    start = time.perf_counter()
    code = command.handler(args)
    detail(args, f"done in {time.perf_counter() - start:.2f} s (exit status {code})")
    return code


class DeprecatedAlias(argparse.Action):
    """An old flag that still works for one more release: it stores its value under the new
    flag's name and prints one line saying which flag to use instead."""

    def __init__(self, option_strings: list[str], dest: str, *, use: str, **kwargs: Any) -> None:
        self.use = use
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"mosaic-it: warning: {parser.prog} {option_string} is deprecated and will be "
            f"removed; use {self.use} {values} ({option_string} names the chat template in the "
            "other commands)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def declare_prompt_format(
    a: Arguments, choices: tuple[str, ...], default: str, help_text: str
) -> None:
    """``--prompt-format``: how training and evaluation put a record to the model (train,
    eval). ``--template`` was its name there until it came to mean the chat template in every
    command; it still works for one more release, saying so."""
    either = a.exclusive()
    either.add(
        "--prompt-format",
        choices=choices,
        default=default,
        help=f"{help_text} (default %(default)s)",
    )
    either.add(
        "--template",
        dest="prompt_format",
        choices=choices,
        action=DeprecatedAlias,
        default=argparse.SUPPRESS,
        use="--prompt-format",
        help="deprecated: the old name of --prompt-format (elsewhere --template is the chat "
        "template of the token budget)",
    )
