"""Hugging Face ``datasets`` and torch: mosaics as a Dataset, or drawn afresh every epoch.

* :func:`mosaic_dataset` turns a dataset (or any records) into a ``datasets.Dataset`` of
  mosaic samples, every epoch of the config, as the command line would write them.
* :class:`MosaicIterable` draws the samples of one epoch each time it is iterated, so training
  sees new combinations every epoch without writing them to disk; its
  :meth:`~MosaicIterable.to_iterable_dataset` is the route for TRL's and transformers'
  trainers (their ``set_epoch`` picks the epoch). Epoch ``e`` is seeded by
  ``(seed, e)``: it equals epoch ``e`` of ``mosaic-it mosaic`` with the same config. It is
  a torch ``IterableDataset`` when torch is installed, and a generator function for
  ``datasets.IterableDataset.from_generator``.

Rows are in the chosen output format; ``mosaic`` holds the sample's spec as JSON text (one
column type whatever the rule), or ``None`` for rows not mosaicked.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker
from mosaic_it.io.assemble import RowAssembly
from mosaic_it.io.formats import check_format, sample_to_row
from mosaic_it.io.jsoncodec import dumps
from mosaic_it.io.readers import InvalidRecord, records_from_raw
from mosaic_it.io.tables import rows_dataset
from mosaic_it.records import Record

try:  # a torch IterableDataset when torch is there; torch stays optional
    from torch.utils.data import IterableDataset as _IterableBase
except ImportError:  # pragma: no cover - exercised where torch is absent
    _IterableBase = object  # type: ignore[assignment,misc]  # the base without torch

Source = Iterable[Any]  # a datasets.Dataset, dicts of any format, or Records


def _raw(source: Source) -> Iterator[tuple[int, str, Any]]:
    if hasattr(source, "iter") and hasattr(source, "column_names"):  # a datasets.Dataset
        index = 0
        for batch in source.iter(batch_size=1024):
            keys = list(batch)
            for values in zip(*batch.values()):
                yield index, f"record {index}", dict(zip(keys, values))
                index += 1
        return
    for index, obj in enumerate(source):
        yield index, f"record {index}", obj


def _records(
    source: Source,
    input_format: str | None,
    on_error: str,
    invalid: list[InvalidRecord],
    on_conversation: Callable[[Any], None] | None = None,
) -> Iterator[Record]:
    raw = _raw(source)
    first = next(raw, None)
    if first is None:
        return
    if isinstance(first[2], Record):
        yield first[2]
        for _, _, r in raw:
            yield r
        return

    def all_raw() -> Iterator[tuple[int, str, Any]]:
        yield first
        yield from raw

    yield from records_from_raw(
        all_raw(),
        on_error,
        invalid,
        input_format=input_format,
        on_conversation=on_conversation,
    )


def _json_mosaic(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("mosaic") is not None:
        row["mosaic"] = dumps(row["mosaic"])  # the same text as the files' "mosaic" column
    return row


def mosaic_dataset(
    source: Source,
    config: MosaicConfig | None = None,
    *,
    output_format: str = "messages",
    input_format: str | None = None,
    keep_originals: bool = False,
    keep_multiturn: bool = False,
    on_error: str = "raise",
    tokenizer: Tokenizer | None = None,
) -> Any:
    """Every epoch's mosaic samples of ``source`` as a ``datasets.Dataset``.

    The rows are those ``mosaic-it mosaic`` writes with the same options, in the same order.
    """
    check_format(output_format)
    mosaicker = Mosaicker(config, tokenizer=tokenizer)
    invalid: list[InvalidRecord] = []
    assembly = RowAssembly(
        output_format, keep_originals=keep_originals, keep_multiturn=keep_multiturn
    )
    prepared = mosaicker.prepare(
        _records(source, input_format, on_error, invalid, assembly.on_conversation), invalid
    )
    samples = (
        assembly.sample_row(sample)
        for epoch in range(mosaicker.config.epochs)
        for sample in mosaicker.run_epoch(prepared, epoch)
    )
    rows = assembly.rows(samples, prepared.grouper.records, prepared.admitted)
    return rows_dataset(rows, output_format, assembly.columns)


class MosaicIterable(_IterableBase):
    """Fresh mosaic samples every epoch, without writing them anywhere.

    Each iteration yields the rows of the next epoch (or of the epoch set with
    :meth:`set_epoch`, as trainers do). Records are read and counted once, up front. In a
    torch ``DataLoader`` with several workers, each worker yields its share of the epoch's
    samples, and a pass draws the same epoch with 0 or N workers, kept between epochs
    (``persistent_workers``) or not: the epoch counter is shared with the workers
    (:class:`EpochClock`), so ``set_epoch`` in the main process reaches them.

    For a trainer, :meth:`to_iterable_dataset` gives a ``datasets.IterableDataset`` whose
    epoch (``set_epoch``, which trainers call) is the mosaic epoch, however often it is
    iterated. ``datasets.IterableDataset.from_generator(iterable)`` works too, but there the
    object is called, and each call (a trainer's peeks included) yields the next epoch.
    """

    def __init__(
        self,
        source: Source,
        config: MosaicConfig | None = None,
        *,
        output_format: str = "messages",
        input_format: str | None = None,
        on_error: str = "raise",
        epoch: int = 0,
        tokenizer: Tokenizer | None = None,
        json_mosaic: bool = True,
    ) -> None:
        self.output_format = check_format(output_format)
        self.mosaicker = Mosaicker(config, tokenizer=tokenizer)
        self.config = self.mosaicker.config
        self.invalid: list[InvalidRecord] = []
        self._prepared = self.mosaicker.prepare(
            _records(source, input_format, on_error, self.invalid), self.invalid
        )
        self._clock = EpochClock(epoch)
        self.json_mosaic = json_mosaic

    @property
    def summary(self) -> Any:
        """Records read, admitted and left out (and the samples drawn so far)."""
        return self._prepared.summary

    @property
    def epoch(self) -> int:
        """The epoch the next pass will draw (in this process's view)."""
        return self._clock.peek()

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass draw epoch ``epoch``; passes after it go on from there.

        The epoch lives in memory shared with a ``DataLoader``'s worker processes, so it
        reaches workers that were started before the call (``persistent_workers=True``).
        """
        self._clock.set(epoch)

    def epoch_rows(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The rows of epoch ``epoch`` (epoch ``epoch`` of the command line's output)."""
        for sample in self.mosaicker.run_epoch(self._prepared, epoch):
            row = sample_to_row(sample, self.output_format)
            yield _json_mosaic(row) if self.json_mosaic else row

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, workers = _torch_worker()
        rows = self.epoch_rows(self._clock.take(workers))
        if workers > 1:
            rows = islice(rows, worker, None, workers)
        return iter(rows)

    def __call__(self) -> Iterator[dict[str, Any]]:
        """A generator function for ``datasets.IterableDataset.from_generator``."""
        yield from self.__iter__()

    def to_iterable_dataset(self) -> Any:
        """A ``datasets.IterableDataset`` whose epoch is the mosaic epoch: epoch ``e`` of the
        dataset (``set_epoch(e)``, which TRL's and transformers' trainers call before every
        training epoch) yields epoch ``e`` of ``mosaic-it mosaic`` with the same config and
        seed. Iterating never moves the epoch on, so a trainer may peek at the rows as often
        as it likes; ``map``, ``filter`` and the other lazy steps keep it (datasets hands the
        epoch down to every step of the chain).
        """
        import datasets

        return datasets.IterableDataset(_epoch_examples()(self.epoch_rows, 0))


def _epoch_examples() -> type:
    """The ``datasets`` examples-iterable of :meth:`MosaicIterable.to_iterable_dataset`, made
    on first use (``datasets`` stays optional).

    ``datasets.IterableDataset`` hands its epoch to every step of its chain that has
    ``shift_rngs`` (``shift_rngs(epoch)`` on a copy, each time it is iterated at an epoch other
    than 0): that call picks the mosaic epoch here. One shard: the epoch's rows in order.
    """
    global _EPOCH_EXAMPLES
    if _EPOCH_EXAMPLES is not None:
        return _EPOCH_EXAMPLES
    from datasets.iterable_dataset import ExamplesIterable

    class EpochExamples(ExamplesIterable):
        def __init__(self, rows: Any, epoch: int) -> None:
            super().__init__(self._examples, {"epoch": epoch})
            self.rows = rows
            self.epoch = epoch

        def _examples(self, epoch: int) -> Iterator[tuple[str, dict[str, Any]]]:
            for index, row in enumerate(self.rows(epoch)):
                yield f"{epoch}_{index}", row

        def shift_rngs(self, value: int) -> EpochExamples:
            return EpochExamples(self.rows, value)

        def shuffle_data_sources(self, generator: Any) -> EpochExamples:
            return EpochExamples(self.rows, self.epoch)  # one source: nothing to shuffle

        def shard_data_sources(self, num_shards: int, index: int, contiguous: bool = True) -> Any:
            return self if index == 0 else EpochExamples(lambda _: iter(()), self.epoch)

        def reshard_data_sources(self) -> EpochExamples:
            return EpochExamples(self.rows, self.epoch)

    _EPOCH_EXAMPLES = EpochExamples
    return EpochExamples


_EPOCH_EXAMPLES: type | None = None


def _torch_worker() -> tuple[int, int]:
    if _IterableBase is object:
        return 0, 1
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class EpochClock:
    """Which epoch each pass over a :class:`MosaicIterable` draws, the same for any workers.

    ``set(e)`` makes the next pass epoch ``e``; each later pass is the one after. A pass is one
    ``__iter__`` call in the main process, or one call in each of a ``DataLoader``'s
    ``workers`` processes: a call takes a ticket, and ticket ``t`` draws epoch ``e + t //
    workers``. So 0 and N workers see the same epochs, whether the workers are started anew
    every epoch (they inherit the shared counters) or kept (``persistent_workers``: they read
    the counters ``set`` wrote in the main process after they started).

    The counters sit in shared memory. Pickled to start a worker process they stay shared;
    pickled for anything else (a copy, a fingerprint) the copy gets counters of its own with
    the same values.
    """

    def __init__(self, epoch: int = 0, ticket: int = 0) -> None:
        self._start = multiprocessing.RawValue("q", epoch)
        self._tickets = multiprocessing.RawValue("q", ticket)
        self._lock = multiprocessing.Lock()

    def set(self, epoch: int) -> None:
        with self._lock:
            self._start.value = epoch
            self._tickets.value = 0

    def peek(self, workers: int = 1) -> int:
        return self._start.value + self._tickets.value // max(workers, 1)

    def take(self, workers: int = 1) -> int:
        with self._lock:
            epoch = self.peek(workers)
            self._tickets.value += 1
            return epoch

    def __getstate__(self) -> dict[str, Any]:
        try:
            multiprocessing.context.assert_spawning(self)
        except RuntimeError:  # not starting a process: a copy with counters of its own
            return {"values": (self._start.value, self._tickets.value)}
        return {"shared": (self._start, self._tickets, self._lock)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._start, self._tickets, self._lock = state["shared"]
        else:
            self.__init__(*state["values"])  # type: ignore[misc]  # fresh counters, same values
