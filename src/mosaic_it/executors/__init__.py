"""Executors that only schedule one job: local processes, Ray shards; and the Python call that
runs a job on files as ``mosaic-it mosaic`` does.

A run is a value (:class:`~mosaic_it.executors.job.MosaicJob`); an executor runs it
(``executor.run(job)``) and returns a :class:`~mosaic_it.executors.job.JobResult`. The
command line, :func:`mosaic_file` and the benchmarks all go through this one path.
"""

from __future__ import annotations

import os
from typing import Any

from mosaic_it.engine.mosaicker import MosaicConfig
from mosaic_it.errors import OptionError
from mosaic_it.executors.job import Executor, JobResult, MosaicJob, Note
from mosaic_it.executors.local import LocalExecutor
from mosaic_it.executors.ray import RayExecutor

EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def create_executor(name: str = "local", **options: Any) -> Executor:
    """The executor called ``name`` ("local" or "ray") with its options: ``workers``,
    ``force_workers``, ``resume``, ``read_ahead`` (local); ``shards``, ``address``,
    ``shard_format`` (ray)."""
    try:
        kind = EXECUTORS[name]
    except KeyError:
        raise OptionError(f"executor: 'local' or 'ray', got {name!r}") from None
    return kind(**options)


def mosaic_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: MosaicConfig | None = None,
    *,
    executor: Executor | None = None,
    workers: int = 0,
    resume: bool = False,
    note: Note | None = None,
    **job: Any,
) -> JobResult:
    """Mosaic the records of ``input`` into ``output``: everything ``mosaic-it mosaic INPUT
    OUTPUT`` does, with the same bytes for the same options. Side files and record handling
    are :class:`~mosaic_it.executors.job.MosaicJob`'s fields (``rejects``, ``stats``,
    ``dataset_info``, ``output_format``, ``keep_originals``, ``on_error``...); ``workers``
    and ``resume`` are the local executor's (or pass ``executor``, e.g.
    ``RayExecutor(shards=8)``). Outputs are checked and locked for the run; ``note`` is told
    what the run decided on its own (default: the ``mosaic_it`` logger).

    For example ``mosaic_file("builtin:example", "out/api.jsonl", MosaicConfig(epochs=1),
    workers=2, rejects="out/rejects.jsonl").summary.samples_written``.
    """
    if executor is None:
        executor = LocalExecutor(workers=workers, resume=resume)
    elif workers or resume:
        raise OptionError("mosaic_file: give workers and resume to the executor you pass")
    return executor.run(MosaicJob(input, output, config or MosaicConfig(), **job), note=note)
