"""Hugging Face ``datasets`` and torch: mosaics as a Dataset, or drawn afresh every epoch.

* :func:`mosaic_dataset` turns a dataset (or any records) into a ``datasets.Dataset`` of
  mosaic samples, every epoch of the config, as the command line would write them.
* :class:`MosaicIterable` draws the samples of one epoch each time it is iterated, so training
  sees new combinations every epoch without writing them to disk. Epoch ``e`` is seeded by
  ``(seed, e)``: it equals epoch ``e`` of ``mosaic-it mosaic`` with the same config. It is
  a torch ``IterableDataset`` when torch is installed, and a generator function for
  ``datasets.IterableDataset.from_generator``.

Rows are in the chosen output format; ``mosaic`` holds the sample's spec as JSON text (one
column type whatever the rule), or ``None`` for rows not mosaicked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from .api import MosaicConfig, Mosaicker
from .formats import check_format, conversation_to_row, record_to_row, sample_to_row
from .io import InvalidRecord, dumps, records_from_raw, rows_dataset
from .records import Record
from .tokenizer import Tokenizer

try:  # a torch IterableDataset when torch is there; torch stays optional
    from torch.utils.data import IterableDataset as _IterableBase
except ImportError:  # pragma: no cover - exercised where torch is absent
    _IterableBase = object  # type: ignore[assignment,misc]

Source = Iterable[Any]  # a datasets.Dataset, dicts of any format, or Records


def _raw(source: Source) -> Iterator[tuple[int, str, Any]]:
    if hasattr(source, "iter") and hasattr(source, "column_names"):  # a datasets.Dataset
        index = 0
        for batch in source.iter(batch_size=1024):  # type: ignore[attr-defined]
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
    conversations: list[Any] | None = None,
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
        all_raw(), on_error, invalid, input_format=input_format,
        on_conversation=conversations.append if conversations is not None else None,
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
    conversations: list[Any] | None = [] if keep_multiturn else None
    prepared = mosaicker.prepare(_records(source, input_format, on_error, invalid, conversations), invalid)

    def rows() -> Iterator[dict[str, Any]]:
        for epoch in range(mosaicker.config.epochs):
            for sample in mosaicker.run_epoch(prepared, epoch):
                yield sample_to_row(sample, output_format)
        if keep_originals:
            for i in prepared.admitted:
                yield record_to_row(prepared.grouper.records[i], output_format)
        for conversation in conversations or ():
            yield conversation_to_row(conversation, output_format)

    columns = {"history"} if conversations else set()
    return rows_dataset(rows(), output_format, columns)


class MosaicIterable(_IterableBase):  # type: ignore[misc,valid-type]
    """Fresh mosaic samples every epoch, without writing them anywhere.

    Each iteration yields the rows of the next epoch (or of the epoch set with
    :meth:`set_epoch`, as trainers do). Records are read and counted once, up front. In a
    torch ``DataLoader`` with several workers, each worker yields its share of the epoch's
    samples; call ``set_epoch`` every epoch there (the HF Trainer does), since workers hold
    copies of this object.

    ``datasets.IterableDataset.from_generator(iterable)`` works too: the object is callable
    and each call yields the next epoch.
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
        self.epoch = epoch
        self.json_mosaic = json_mosaic

    @property
    def summary(self) -> Any:
        """Records read, admitted and left out (and the samples drawn so far)."""
        return self._prepared.summary

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_rows(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The rows of epoch ``epoch`` (epoch ``epoch`` of the command line's output)."""
        for sample in self.mosaicker.run_epoch(self._prepared, epoch):
            row = sample_to_row(sample, self.output_format)
            yield _json_mosaic(row) if self.json_mosaic else row

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        self.epoch += 1
        rows = self.epoch_rows(epoch)
        worker, workers = _torch_worker()
        if workers > 1:
            rows = islice(rows, worker, None, workers)
        return iter(rows)

    def __call__(self) -> Iterator[dict[str, Any]]:
        """A generator function for ``datasets.IterableDataset.from_generator``."""
        yield from self.__iter__()

    def to_iterable_dataset(self) -> Any:
        """A ``datasets.IterableDataset`` drawing a new epoch each time it is iterated."""
        import datasets

        return datasets.IterableDataset.from_generator(self)


def _torch_worker() -> tuple[int, int]:
    if _IterableBase is object:
        return 0, 1
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)
