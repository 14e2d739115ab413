"""The signals that end a run: SIGINT (Ctrl-C), SIGTERM (``kill``, a scheduler's stop) and
SIGHUP (the terminal closed) all end it the same way.

The command line turns each into :class:`Interrupted` (a :class:`KeyboardInterrupt`), raised in
the main thread wherever it is, so every ``finally`` and context manager on the way out runs:
temporary files are removed, finished work a later ``--resume`` can reuse is kept, and the
message says which. The exit status is 128 + the signal's number (130, 143, 129), as a shell
reports a process the signal ended. A signal the caller ignores (``nohup`` ignores SIGHUP)
stays ignored.

Worker processes (:mod:`.engine.parallel`) leave the group-wide signals to their parent
(:func:`leave_to_parent`): the parent ends them when it is interrupted; a worker killed on its
own is reported by the parent as a worker that died.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A signal ended the run (``signum``: which)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def signal_of(exc: BaseException) -> int:
    """The signal behind an interruption (a plain KeyboardInterrupt is SIGINT)."""
    return getattr(exc, "signum", signal.SIGINT)


def exit_status(exc: BaseException) -> int:
    """What a shell reports for a process ended by the signal behind ``exc``."""
    return 128 + signal_of(exc)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def raise_on_signals() -> None:
    """From now on, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread
    (unless ignored). Call it from the main thread, as the command line starts.

    Python runs a handler between two steps of whatever code is running, and some code drops
    what it raises: a ``__del__``, a weakref callback, the hooks run around ``fork`` (a signal
    that came while a worker was forked once went unnoticed, and the run went on). An
    :class:`Interrupted` dropped there is delivered again (:func:`_redeliver`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in ENDING:
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _raise)
    if sys.unraisablehook is not _redeliver:
        _previous_hook[:] = [sys.unraisablehook]
        sys.unraisablehook = _redeliver


_previous_hook: list[Callable[[Any], object]] = []
REDELIVER_AFTER = 0.05  # seconds


def _redeliver(unraisable: Any) -> None:
    """An :class:`Interrupted` that code which ignores exceptions dropped: the signal is
    delivered to the main thread again a moment later (:data:`REDELIVER_AFTER`), once out of
    that code (other errors are reported as Python reports them)."""
    if isinstance(unraisable.exc_value, Interrupted):
        again = threading.Timer(
            REDELIVER_AFTER, _thread.interrupt_main, args=(unraisable.exc_value.signum,)
        )
        again.daemon = True
        again.start()
        return
    (_previous_hook[0] if _previous_hook else sys.__unraisablehook__)(unraisable)


def leave_to_parent() -> None:
    """In a worker process: SIGINT and SIGHUP, which reach the whole process group, are
    ignored (the parent handles them and ends its workers without waiting on them); SIGTERM
    ends the worker at once, as it does any process. The signals a worker was started with
    blocked (:func:`signals_blocked`) are taken from then on, with these handlers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, ENDING)


@contextmanager
def signals_blocked() -> Iterator[None]:
    """The ending signals wait until the block ends (then they are taken as usual). A process
    forked in the block starts with them blocked, so that none reaches it before it has set
    its own handlers (:func:`leave_to_parent`): with the parent's, a Ctrl-C in that moment
    raised in the new worker, not in the parent that ends the run."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ENDING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def hold() -> None:
    """From now on the ending signals wait, blocked: the command is done and the process is
    exiting, and a signal now could only garble its end (a traceback from an exit handler)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, ENDING)
