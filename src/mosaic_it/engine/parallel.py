"""Work on forked processes: reading the input ahead (:class:`ReadAhead`), counting the
records while the parent reads the next ones, and the epochs (see
:mod:`mosaic_it.executors.local`).

Counting a batch of records is a pure function of its texts (given the tokenizer), so batches
are counted on forked workers, each with the word cache the parent had when it forked. The
parent keeps reading and parsing, takes the results back in order, and learns the words the
workers counted, so its own cache ends as full as if it had counted everything itself. The
counts are exact either way: the output is the same for any number of workers.

The pool of workers and how they start and end are in :mod:`.processes`. A worker that dies
(killed, out of memory) is an error the run reports, never a hang.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from mosaic_it.budget.special import SpecialFinder
from mosaic_it.engine.processes import (
    WorkerDied,
    die_with_parent,
    fork_pool,
    name_process,
    start_method,
)
from mosaic_it.engine.sample_count import Counted, SampleCounter
from mosaic_it.engine.store import YOUNG_COLLECTION_THRESHOLD
from mosaic_it.io.readers import InvalidRecord
from mosaic_it.method.fitting import FitFacts
from mosaic_it.records import Record, join_prompt
from mosaic_it.signals import signals_blocked

# the pool and its workers live in .processes; these names are imported from here too
__all__ = [
    "READ_AHEAD_BATCH",
    "READ_AHEAD_BATCHES",
    "ReadAhead",
    "Reader",
    "Screen",
    "Screened",
    "screened_batches",
]


@dataclass(frozen=True)
class Screened:
    """What :class:`Screen` found in a batch of records."""

    found: list[tuple[int, str, str]]  # (place in the batch, field, string) of each holding one
    counted: Counted  # the texts of the records that go on, in order
    facts: list[int]  # what the texts of each record that goes on rule out for layouts


@dataclass(frozen=True)
class Screen:
    """What is done to every batch of records before it is stored: the special strings the
    records hold are found (where ``finder`` is set), and the texts of those that go on (all
    of them, with ``keep_found``) are counted and their facts for layouts found
    (:meth:`.FitFacts.facts_of`). It changes nothing but caches, so it runs on forked workers
    while the parent reads on."""

    counter: SampleCounter
    finder: SpecialFinder | None
    keep_found: bool
    facts: FitFacts

    def __call__(self, records: list[tuple[str, ...]], fold: bool) -> Screened:
        """Screen records given by their texts (:meth:`Record.texts`); ``fold`` False: count
        the texts whole (the parent has stopped folding)."""
        found: list[tuple[int, str, str]] = []
        if self.finder is not None:
            find = self.finder.find_in
            for j, record_texts in enumerate(records):
                hit = find(record_texts)
                if hit is not None:
                    found.append((j, *hit))
        left_out = set() if self.keep_found else {j for j, _, _ in found}
        texts = [
            text
            for j, (instruction, input_, output, _) in enumerate(records)
            if j not in left_out
            for text in (join_prompt(instruction, input_), output)
        ]
        facts = list(map(self.facts.facts_of, texts[0::2], texts[1::2]))
        return Screened(found, self.counter.count_texts(texts, fold), facts)


def _screen_job(screen: Screen, records: list[tuple[str, ...]], fold: bool) -> Screened:
    return screen(records, fold)


def screened_batches(
    screen: Screen, batches: Iterable[list[Record]], workers: int
) -> Iterator[tuple[list[Record], Screened]]:
    """Each batch of records with what :class:`Screen` found in it, in order.

    With one batch, or one worker, everything is screened here (a small input never forks);
    otherwise batches go to ``workers`` processes, at most twice ``workers`` ahead of the one
    being taken back. The counts are exact either way: a batch counted with folding after
    the parent stopped folding only has its summaries left unused.
    """
    counter = screen.counter
    it = iter(batches)
    ahead = list(islice(it, 2))  # two batches read: is there more than one?
    if len(ahead) < 2 or workers <= 1 or not counter.folds:
        # one batch, one process, or a tokenizer without word counts (which batches on all
        # cores itself)
        for items in chain(ahead, it):
            yield items, screen([r.texts() for r in items], counter.folds)
        return
    pending: deque[tuple[list[Record], Future[Screened]]] = deque()
    with fork_pool(workers, "counting tokens", "counter", screen) as pool:
        for items in chain(ahead, it):
            job = pool.submit(_screen_job, [r.texts() for r in items], counter.folds)
            pending.append((items, job))
            while len(pending) > 2 * workers:
                items, job = pending.popleft()
                yield items, pool.result(job)
        while pending:
            items, job = pending.popleft()
            yield items, pool.result(job)


# ------------------------------------------------------------------------------------------
# Reading ahead
# ------------------------------------------------------------------------------------------

READ_AHEAD_BATCH = 2048  # records a message of the reading process carries
# messages it may be ahead of the run (about 25,000 records, 20 MB of pickled text for Alpaca;
# the process tree's memory peaks as the reading ends, the reader still alive beside the parent
# and the counting workers)
READ_AHEAD_BATCHES = 12

Reader = Callable[[list[InvalidRecord]], Iterable[Record]]


class ReadAhead:
    """The records of ``read`` (called with the list the records it leaves out go to), read
    and parsed on a forked process while this one goes on: a run starts by loading its
    tokenizer (a second or more for a large vocabulary, in one call that holds the
    interpreter), and the input is read meanwhile on the core that would wait.

    Iterating gives the same records in the same order as ``read`` itself, and ``invalid``
    gets the same entries as they come; an error ``read`` raises is raised here after the
    records before it. The reader stays at most :data:`READ_AHEAD_BATCHES` messages ahead, so
    its memory does not grow with the input. Use it as a context manager: leaving the block
    ends the reading process, whatever happened.

    The messages come through a pipe whose writing end only the reading process holds: if it
    dies (killed, out of memory), even in the middle of a message, the pipe ends and
    iterating raises :class:`WorkerDied` at once (a ``multiprocessing.Queue`` keeps a writing
    end in this process too, and waited forever for the rest of a message cut short).
    """

    def __init__(self, read: Reader, invalid: list[InvalidRecord]) -> None:
        self.invalid = invalid
        self._read = read
        # ``read`` is a closure, inherited through a fork: where processes cannot fork, this
        # one reads (the same records, without the head start)
        self._forks = start_method() == "fork"
        if not self._forks:
            return
        context = multiprocessing.get_context("fork")
        self._incoming, self._outgoing = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_read_ahead,
            args=(os.getpid(), read, self._incoming, self._outgoing),
            daemon=True,
        )

    def __enter__(self) -> ReadAhead:
        if not self._forks:
            return self
        # the reader's collections leave the objects it inherits alone (their pages stay shared)
        gc.freeze()
        try:
            with signals_blocked():  # until the reader has its own handlers
                self._process.start()
        finally:
            gc.unfreeze()
            # the reading process holds the only writing end (workers forked later get none)
            self._outgoing.close()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._forks:
            return
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._incoming.close()

    def __iter__(self) -> Iterator[Record]:
        if not self._forks:
            yield from self._read(self.invalid)
            return
        while True:
            kind, payload, invalid = self._next()
            self.invalid.extend(invalid)
            if kind == "records":
                ids, instructions, outputs, inputs, systems = payload
                yield from map(Record, ids, instructions, outputs, inputs, systems)
            elif kind == "end":
                return
            else:
                raise payload

    def _next(self) -> tuple[str, Any, list[InvalidRecord]]:
        # a reader that failed is reported at once, not after the records it sent before
        # (thousands, seconds of counting); one that finished has sent everything
        if not self._process.exitcode:
            try:
                return self._incoming.recv()
            except (EOFError, OSError):  # the pipe ended (OSError: in the middle of a message)
                self._process.join(1.0)
        raise WorkerDied(
            f"the process reading the input (pid {self._process.pid}) "
            f"{_how_it_ended(self._process.exitcode)} before it finished; no output was "
            "written: run again"
        )


def _how_it_ended(exitcode: int | None) -> str:
    """How a process ended, in words, from its exit code (negative: the signal that ended it)."""
    if exitcode is None:
        return "stopped sending"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (out of memory?)" if exitcode == -signal.SIGKILL else ""
        return f"was killed by {name}{why}"
    return f"exited with status {exitcode}"


def _read_ahead(parent: int, read: Reader, incoming: Any, out: Any) -> None:
    """The reading process: the records in messages of column lists, each with the records
    left out since the last; then the end, or the error that stopped the reading. A thread
    writes the messages to the pipe while the reading goes on, at most
    :data:`READ_AHEAD_BATCHES` behind it."""
    die_with_parent(parent)
    name_process("reader")
    incoming.close()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)  # every object it makes dies once sent
    invalid: list[InvalidRecord] = []
    sent = 0  # entries of invalid already sent
    batch: list[Record] = []
    waiting: queue.Queue[Any] = queue.Queue(READ_AHEAD_BATCHES)

    def write() -> None:
        try:
            while (message := waiting.get()) is not None:
                out.send(message)
        except BaseException:  # noqa: BLE001  the pipe is gone: the reading cannot go on
            os._exit(1)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()

    def send(kind: str, payload: Any) -> None:
        nonlocal sent
        waiting.put((kind, payload, invalid[sent:]))
        sent = len(invalid)

    def send_batch() -> None:
        send("records", [[getattr(r, name) for r in batch] for name in _RECORD_COLUMNS])
        batch.clear()

    try:
        for record in read(invalid):
            batch.append(record)
            if len(batch) >= READ_AHEAD_BATCH:
                send_batch()
        if batch:
            send_batch()
        send("end", None)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent reports it
        pass
    except BaseException as exc:  # handed to the parent, raised there after the records before
        if batch:
            send_batch()
        send("error", _picklable(exc))
    waiting.put(None)
    writer.join()
    out.close()


_RECORD_COLUMNS = ("id", "instruction", "output", "input", "system")  # Record's init order


def _picklable(exc: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001  an error that cannot cross: its message does
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    exc.__traceback__ = None
    return exc
