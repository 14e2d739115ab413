"""The command line: argument parsing and one handler per command (:mod:`.main`)."""

from __future__ import annotations

import sys
from typing import NoReturn


def entry() -> NoReturn:
    """The ``mosaic-it`` program. The signals that end a run are taken over first (see
    :mod:`mosaic_it.signals`): one that comes while the command line is still being imported
    ends it with a message and the signal's exit status, as one that comes later does."""
    from mosaic_it.signals import exit_status, raise_on_signals, signal_of

    raise_on_signals()
    try:
        from mosaic_it.cli.main import entry as run
    except KeyboardInterrupt as exc:
        import signal

        name = signal.Signals(signal_of(exc)).name
        print(
            f"mosaic-it: interrupted ({name}) while starting; no output was written; nothing "
            "was kept for --resume: run the same command again",
            file=sys.stderr,
        )
        sys.exit(exit_status(exc))
    run()
