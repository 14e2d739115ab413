"""The command line: ``mosaic-it COMMAND ...``.

The parser is built from the command registry (:mod:`mosaic_it.cli.commands`); this module only
runs the chosen command's handler and turns the errors a user can fix
(:class:`~mosaic_it.errors.MosaicItError`: bad input, bad options, the environment) into one
line on stderr and an exit status (2; 3: a worker process died); 128 + the signal when a
signal ended the run (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). Anything else is a bug,
reported in one line with exit status 1; ``--debug`` (or ``MOSAIC_IT_TRACEBACK=1``) prints the
traceback of any error first.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import traceback
from typing import NoReturn

from mosaic_it import __version__
from mosaic_it.cli.commands import COMMANDS
from mosaic_it.cli.registry import Arguments, Command, declare_verbosity, run_command
from mosaic_it.errors import MosaicItError, faults_of_the_environment
from mosaic_it.io.outputs import RunInterrupted
from mosaic_it.signals import exit_status, hold, raise_on_signals, signal_of

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUG",
    "EXIT_WORKER_DIED",
    "build",
    "build_parser",
    "entry",
    "main",
]

EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_WORKER_DIED = 3  # WorkerDied.exit_status
# set (to anything non-empty), as --debug: an error's traceback before its one-line report
TRACEBACK_VARIABLE = "MOSAIC_IT_TRACEBACK"


def build_parser() -> argparse.ArgumentParser:
    return build()[0]


def build() -> tuple[argparse.ArgumentParser, dict[str, tuple[Command, Arguments]]]:
    """The parser, and each command with the arguments it declared on its subparser."""
    parser = argparse.ArgumentParser(
        prog="mosaic-it",
        description="Mosaic-IT: group instruction/response pairs into multi-instruction samples "
        "with meta-instructions about the answer's layout.",
    )
    parser.add_argument("--version", action="version", version=f"mosaic-it {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of an error before its one-line report (as "
        f"{TRACEBACK_VARIABLE}=1 does): for a bug report",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {}
    for command in COMMANDS:
        arguments = Arguments(
            sub.add_parser(
                command.name,
                help=command.help,
                description=command.description,
                **command.parser_options,
            )
        )
        command.declare(arguments)
        declare_verbosity(arguments)  # -q and -v: every command's, declared once here
        commands[command.name] = (command, arguments)
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    parser, commands = build()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    command, arguments = commands[args.command]
    debug = args.debug or bool(os.environ.get(TRACEBACK_VARIABLE))
    try:
        with faults_of_the_environment(_output_of(args)):  # an OSError: EnvironmentFault
            if command.prepare is not None:
                command.prepare(args, arguments, argv[argv.index(args.command) + 1 :])
            return run_command(command, arguments, args)
    except MosaicItError as exc:  # the user's to fix: input, options, environment
        _traceback(exc, debug)
        print(f"mosaic-it: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except RunInterrupted as exc:
        print(f"mosaic-it: {exc}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt as exc:
        return _interrupted(exc, hasattr(args, "resume"))
    except Exception as exc:  # anything else is a bug of mosaic-it (an InternalError among them)
        _traceback(exc, debug)
        print(bug_message(exc), file=sys.stderr)
        return EXIT_BUG


def _traceback(exc: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)


def bug_message(exc: BaseException) -> str:
    """The one line that reports an unexpected error as a bug, saying how to see its traceback."""
    what = " ".join(f"{type(exc).__name__}: {exc}".split())
    return (
        f"mosaic-it: bug: {what} (a bug in mosaic-it, not in your input; run it again as "
        f"'mosaic-it --debug COMMAND ...' (or with {TRACEBACK_VARIABLE}=1) to see the "
        "traceback, and please report it)"
    )


def _interrupted(exc: KeyboardInterrupt, resumable: bool = True) -> int:
    """A signal that ended a command before it had anything to keep."""
    name = signal.Signals(signal_of(exc)).name
    print(
        f"mosaic-it: interrupted ({name}); no output was written"
        + ("; nothing was kept for --resume: run the same command again" if resumable else ""),
        file=sys.stderr,
    )
    return exit_status(exc)


def _output_of(args: argparse.Namespace) -> str | None:
    """What a command was writing, to name in a message about an error that names no file."""
    for key in ("output", "out", "responses", "output_dir"):
        value = getattr(args, key, None)
        if isinstance(value, str) and value:
            return value
    return None


def entry() -> NoReturn:
    """The ``mosaic-it`` program: :func:`main`, then an exit that leaves the heap as it is.

    A run holds millions of small objects (every record, its summaries, the counting cache);
    tearing them down one by one at exit takes a tenth of a second or more after the output is
    written. The exit handlers (Ray's shutdown among them) still run, and stdout and stderr
    are flushed first; every file a command writes is closed before it returns."""
    raise_on_signals()
    try:
        try:
            code = main()
        finally:
            hold()  # done: what is left is exiting
    except KeyboardInterrupt as exc:  # before the command ran (parsing its options)
        code = _interrupted(exc)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
