"""Worker processes: a pool of forked workers that share one state object
(:func:`fork_pool`), how each is started (named after its role, ending with its parent,
leaving the signals that end a run to the parent) and how the pool is ended, interrupted or
broken, without waiting on a worker that will never answer.

Workers get what they work on from their pool (:class:`ForkPool`): one state object, handed to
each by the pool's initializer and inherited through the fork (shared pages, nothing pickled),
and passed to every job as its first argument. A worker that dies (killed, out of memory) is an
error the run reports, never a hang.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

from mosaic_it.engine.store import release_freed_memory
from mosaic_it.errors import EnvironmentFault
from mosaic_it.signals import leave_to_parent, signals_blocked

R = TypeVar("R")


def usable_cpus() -> int:
    """The cores this process may run on (a cluster job's share, not the whole node's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


class WorkerDied(EnvironmentFault, RuntimeError):
    """A worker process ended without finishing its work (killed, or out of memory)."""

    exit_status = 3  # finished epochs are kept: --resume continues


class ForkPool:
    """Forked worker processes that each hold one ``state`` object, inherited through the
    fork (shared memory: nothing large is pickled). A job is a module-level function called
    in a worker as ``job(state, *args)``.

    Workers are started with the ending signals blocked, so that none reaches a worker before
    it has set its own handlers (:func:`.signals.leave_to_parent`). A result is waited for
    watching the workers: one that died (killed, out of memory), even while it was sending a
    result, breaks the pool at once (:class:`BrokenProcessPool`) rather than leaving the wait
    for a message it cut short."""

    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self._executor = executor

    def submit(self, job: Callable[..., R], *args: Any) -> Future[R]:
        with signals_blocked():  # a worker may be started (forked) here
            return self._executor.submit(_call_with_state, job, *args)

    def result(self, future: Future[R]) -> R:
        """``future``'s result, once its job is done; :class:`BrokenProcessPool` as soon as a
        worker has died."""
        while True:
            try:
                return future.result(timeout=WATCH_EVERY)
            except FuturesTimeout:
                processes = list((getattr(self._executor, "_processes", None) or {}).values())
                if any(p.exitcode is not None for p in processes):  # none ends before the pool
                    raise BrokenProcessPool("a worker process ended before its work") from None

    def map(self, job: Callable[..., R], items: Iterable[Any]) -> Iterator[R]:
        """``job(state, item)`` for each item, in order."""
        with signals_blocked():
            futures = [self._executor.submit(_call_with_state, job, item) for item in items]
        return map(self.result, futures)


# how often (seconds) the wait for a result checks that every worker is alive
WATCH_EVERY = 0.25


# in a worker process only: the state its pool gave it (set by _start_worker, at its start)
_WORKER_STATE: list[Any] = []


def _start_worker(parent: int, role: str, state: Any) -> None:
    """Run in each worker as it starts: it ends with the parent, is named after its ``role``
    and keeps ``state``."""
    die_with_parent(parent)
    name_process(role)
    _WORKER_STATE[:] = [state]


def _call_with_state(job: Callable[..., R], *args: Any) -> R:
    return job(_WORKER_STATE[0], *args)


@contextmanager
def fork_pool(workers: int, what: str, role: str, state: Any) -> Iterator[ForkPool]:
    """``workers`` forked processes holding ``state`` (see :class:`ForkPool`), named after
    their ``role`` (:func:`name_process`); a worker that dies raises :class:`WorkerDied`
    naming ``what`` it was doing."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizers, after a fork
    # the objects made so far go out of the collector's sight: a collection in a worker would
    # otherwise write to every one of them, copying the parent's pages into the worker (no
    # collection first: it walks every object, a tenth of a second with a run's records held,
    # on one core while the other waits; what garbage there is stays until the pool ends)
    gc.freeze()
    release_freed_memory()  # what the parent freed is not copied into the workers' share
    # with the fork start method the initializer's arguments are inherited, never pickled
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(start_method()),
        initializer=_start_worker,
        initargs=(os.getpid(), role, state),
    )
    try:
        yield ForkPool(pool)
    except BaseException as exc:
        # interrupted, the work failed or a worker died: the workers' jobs are not wanted
        _abandon(pool)
        if isinstance(exc, BrokenProcessPool):
            raise WorkerDied(
                f"a worker process died while {what} (killed, or out of memory?); no output "
                "was written: run again, with fewer --workers if memory is short"
            ) from None
        raise
    else:
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        gc.unfreeze()


def start_method() -> str:
    """How worker processes start: ``fork`` where the platform has it (a worker inherits its
    state, nothing is pickled), else ``spawn`` (the state is pickled to each worker)."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _abandon(pool: ProcessPoolExecutor) -> None:
    """End a pool whose work is not wanted, waiting on nothing: its workers are killed rather
    than waited for (an epoch can take minutes), and the pool is shut down without joining the
    thread that takes its results. That thread may be waiting for the rest of a result that a
    worker killed while sending it cut short, forever while a writing end of the results' pipe
    is open (a run once hung there, a worker blocked on the lock the killed one held): the
    parent's own writing end is closed, so that the pipe ends with the workers, and the thread
    with it.

    That thread is then given a few seconds to finish before the run goes on to exit: ending a
    broken pool, it closes the pipe of the pool's jobs, which the thread feeding that pipe also
    closes when the exit's handlers stop it; the two at once close one descriptor twice, and
    the loser printed a traceback (``OSError: [Errno 9] Bad file descriptor``) beside the run's
    one-line error, in about one run in ten."""
    results = getattr(pool, "_result_queue", None)
    manager = getattr(pool, "_executor_manager_thread", None)
    _kill_workers(pool)
    writer = getattr(results, "_writer", None)
    if writer is not None:
        writer.close()
    pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None:
        manager.join(MANAGER_ENDS_WITHIN)


# seconds an abandoned pool's own thread is waited for: it ends at once, its workers killed
MANAGER_ENDS_WITHIN = 5.0


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, ValueError):  # already gone
            pass


PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_NAME = 15


def _prctl(option: int, value: int | bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")


def name_process(role: str) -> None:
    """Name this process ``mosaic-ROLE`` (what ``ps``, ``top`` and ``/proc/PID/comm`` show:
    15 characters at most), so that a run's helpers can be told apart (``reader``,
    ``counter``, ``epochs``). Where processes have no names to set, nothing changes."""
    try:
        _prctl(PR_SET_NAME, f"mosaic-{role}".encode()[:15])
    except (OSError, AttributeError):
        pass


def die_with_parent(parent: int) -> None:
    """Run in each worker: end it when the parent ends, even killed with SIGKILL (which gives
    the parent no chance to stop its workers), so that no worker is left blocked forever; the
    signals that reach the whole process group are left to the parent
    (:func:`.signals.leave_to_parent`).

    Linux tells the worker itself (prctl PR_SET_PDEATHSIG); elsewhere a thread watches for
    the parent to go."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)
    leave_to_parent()
