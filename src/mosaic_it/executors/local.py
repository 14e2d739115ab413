"""The local executor: a job on this machine, its epochs on worker processes, resumable.

It only schedules: the input is read here or ahead on a process of its own
(:class:`~mosaic_it.engine.parallel.ReadAhead`), tokens are counted on ``workers`` processes,
epochs are written side by side and concatenated in order (:mod:`.epochs`), and a run that
was interrupted reuses its finished epochs with ``resume``. What a run writes, and in what
order, is the job's (:class:`~mosaic_it.executors.job.Executor.run`): the same bytes for any
number of workers.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from mosaic_it.engine.mosaicker import Mosaicker
from mosaic_it.engine.parallel import ReadAhead, Reader
from mosaic_it.engine.processes import usable_cpus
from mosaic_it.errors import OptionError
from mosaic_it.executors.epochs import fingerprint, keep_for_resume, work_dir_for, write_run
from mosaic_it.executors.job import (
    Executed,
    Executor,
    MosaicJob,
    Note,
    side_file_outputs,
)
from mosaic_it.io.assemble import Assembly, refuse_empty_run
from mosaic_it.io.jsonfiles import iter_jsonl_stdin, stdout_gone
from mosaic_it.io.outputs import Output, RunInterrupted
from mosaic_it.io.readers import InvalidRecord, input_kind, read_records, records_from_raw
from mosaic_it.io.writers import config_path_for, output_kind
from mosaic_it.limits import MAX_WORKERS, bound
from mosaic_it.records import Record
from mosaic_it.signals import signal_of

READ_AHEAD_MIN_BYTES = 4 << 20  # a smaller input is read before the tokenizer has loaded


def workers_for(requested: int, force: bool = False) -> tuple[int, str]:
    """The number of worker processes to run, and a note when it is not what was asked."""
    cores = usable_cpus()
    if requested < 0:
        raise OptionError(f"--workers: must be 0 (one per usable core) or more, got {requested}")
    if force:  # otherwise more than the usable cores are not run
        bound("--workers", requested, at_most=MAX_WORKERS, why="each worker is a forked process")
    if requested == 0:
        return cores, ""
    if requested > cores and not force:
        return cores, (
            f"--workers {requested} is more than the {cores} usable core(s); ran "
            f"{cores} (pass --force-workers to run {requested})"
        )
    return requested, ""


@dataclass(frozen=True)
class LocalExecutor(Executor):
    """Run a job on this machine.

    ``workers``: processes counting tokens, then running epochs, side by side (0: one per core
    this process may use, also the most unless ``force_workers``); the output is the same for
    any number. ``resume``: reuse the finished epochs of an interrupted run of the same job.
    ``read_ahead``: a large file is read on a process of its own while the tokenizer loads and
    tokens are counted (with several workers).
    """

    name: ClassVar[str] = "local"
    workers: int = 0
    force_workers: bool = False
    resume: bool = False
    read_ahead: bool = True

    def options(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "force_workers": self.force_workers,
            "engine": "local",
            "shards": 0,
            "shard_format": "jsonl",
            "ray_address": None,
            "resume": self.resume,
        }

    def check(self, job: MosaicJob) -> None:
        workers_for(self.workers, self.force_workers)
        if self.resume and (job.reads_stdin or job.writes_stdout):
            raise OptionError(
                "--resume: a run reading or writing '-' (standard input or output) cannot be "
                "resumed; name files"
            )
        if job.reads_stdin and self.workers > 1:
            raise OptionError(
                "--workers: INPUT '-' (standard input) is read by one process; leave --workers "
                "out or give 1"
            )
        if job.writes_stdout and job.dataset_info is not None:
            raise OptionError("--dataset-info: OUTPUT '-' (standard output) is no file to name")

    def guarded_outputs(self, job: MosaicJob) -> list[Output]:
        if job.writes_stdout:
            return side_file_outputs(job)
        kind = output_kind(str(job.output))
        return [
            Output(job.output, "OUTPUT", "dir" if kind == "datasets" else "file"),
            *side_file_outputs(job),
            Output(config_path_for(str(job.output)), "OUTPUT.config.yaml"),
        ]

    def execute(self, job: MosaicJob, note: Note) -> Executed:
        workers, workers_note = workers_for(self.workers, self.force_workers)
        if job.reads_stdin:
            workers = 1
        if workers_note:
            note(f"note: {workers_note}")
        if not job.writes_stdout:
            return self._run(job, job.outputs, output_kind(str(job.output)), workers, note)
        # standard output: the run writes a JSONL file of its own, then copies it out
        with tempfile.TemporaryDirectory(prefix="mosaic-it-stdout-") as tmp:
            staged = str(Path(tmp) / "output.jsonl")
            executed = self._run(job, replace(job.outputs, output=staged), "jsonl", workers, note)
            try:
                sys.stdout.flush()
                with open(staged, "rb") as data:
                    shutil.copyfileobj(data, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            except BrokenPipeError:  # the reader stopped (`| head`): nothing more is wanted
                stdout_gone()
        executed.output["type"] = "stdout"
        return executed

    def _run(self, job: MosaicJob, outputs: Any, kind: str, workers: int, note: Note) -> Executed:
        assembly = Assembly(outputs, kind)
        try:
            return self._mosaic_into(job, assembly, workers, note)
        except KeyboardInterrupt as exc:  # a signal (see mosaic_it.signals): say what was kept
            raise _interrupted(str(job.output), assembly, exc) from None

    def _mosaic_into(
        self, job: MosaicJob, assembly: Assembly, workers: int, note: Note
    ) -> Executed:
        source, config, rows = job.source, job.config, assembly.rows
        invalid: list[InvalidRecord] = []
        on_conversation = rows.on_conversation

        def read(invalid: list[InvalidRecord]) -> Iterator[Record]:
            if source == "-":
                items = iter_jsonl_stdin(job.on_error == "skip")
                return records_from_raw(
                    items,
                    job.on_error,
                    invalid,
                    input_format=job.input_format,
                    on_conversation=on_conversation,
                )
            return read_records(
                source,
                on_error=job.on_error,
                invalid=invalid,
                input_format=job.input_format,
                split=job.split,
                on_conversation=on_conversation,
            )

        ahead = self.read_ahead and on_conversation is None and source != "-"
        with _reading(read, invalid, source, workers, ahead) as records:
            mosaicker = Mosaicker(config, progress=job.progress)  # loads the tokenizer meanwhile
            prepared = mosaicker.prepare(rows.noting_systems(records), invalid, workers=workers)
        prepared.summary.workers = min(workers, config.epochs)
        if not prepared.admitted:
            refuse_empty_run(job.outputs, config, mosaicker.summary, Path(source))
        extra = {
            "on_error": job.on_error,
            "input_format": job.input_format,
            "split": job.split,
            "output_format": job.output_format,
        }
        hashed = source if source != "-" and input_kind(source) != "hub" else None
        write_run(
            mosaicker,
            prepared,
            assembly.samples_path,
            to_dict=rows.sample_row,
            workers=workers,
            resume=self.resume,
            fingerprint_value=fingerprint(mosaicker, hashed, extra),
            note=note,
        )
        summary = mosaicker.summary
        written = assembly.write(
            summary.samples_written, prepared.grouper.records, prepared.admitted
        )
        return Executed(
            summary, {"format": job.output_format, "type": assembly.kind, "rows": written}
        )


@contextmanager
def _reading(
    read: Reader, invalid: list[InvalidRecord], source: str | Path, workers: int, alone: bool
) -> Iterator[Iterable[Record]]:
    """The input's records: read ahead on a process of their own (:class:`.ReadAhead`) for a
    file of at least :data:`READ_AHEAD_MIN_BYTES` when the run has several workers and the
    reading hands nothing else back (``alone``: no conversation passed through), else here."""
    path = Path(source)
    try:  # a file that cannot be read is reported by the reader, in its words
        size = path.stat().st_size if alone and path.is_file() else 0
    except OSError:
        size = 0
    ahead = workers > 1 and alone and input_kind(path) in ("json", "jsonl", "parquet")
    if not ahead or size < READ_AHEAD_MIN_BYTES:
        yield read(invalid)
        return
    with ReadAhead(read, invalid) as records:
        yield records


def _interrupted(output: str, assembly: Assembly, exc: BaseException) -> RunInterrupted:
    """A signal ended the run: what was removed, and what was kept for --resume."""
    signum = signal_of(exc)
    head = f"interrupted ({signal.Signals(signum).name})"
    if assembly.done:
        return RunInterrupted(
            f"{head} after {output} was written; its side files (--stats, --rejects, "
            "OUTPUT.config.yaml) may be missing: run the same command again to write them "
            "(--resume has nothing to reuse)",
            signum,
        )
    work = work_dir_for(assembly.samples_path)
    kept = keep_for_resume(work)
    head += f"; {output} was not written or changed; temporary files removed"
    if not kept:
        return RunInterrupted(
            f"{head}; no epoch had finished, so nothing was kept for --resume: run the same "
            "command again",
            signum,
        )
    return RunInterrupted(
        f"{head}; {len(kept)} finished epoch(s) kept in {work}: run the same command with "
        "--resume to reuse them",
        signum,
    )
