"""Writing a run's epochs to a file: on several processes, atomic output, resumable (the local
executor's machinery, :class:`mosaic_it.executors.local.LocalExecutor`).

Every epoch is independent given the counted records: its order and every draw are seeded by
(seed, epoch, ...). So epochs run on worker processes (forked, sharing the counted records),
each writing its samples to a part file in a work directory beside the output; the parent then
concatenates the parts in epoch order into a temporary file and renames it into place. The
output is byte-identical for any number of workers.

A run that is interrupted leaves no output, only the work directory, whose finished epochs
(renamed into place only when complete) are listed with a fingerprint of the run's input and
options. Run the same command with ``--resume`` to reuse them; without it the work directory is
cleared and the run starts over. A finished run removes its work directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from mosaic_it.engine.admission import GroupingStats
from mosaic_it.engine.mosaicker import Mosaicker, Prepared
from mosaic_it.engine.processes import WorkerDied, fork_pool
from mosaic_it.engine.store import fewer_collections
from mosaic_it.engine.summary import RunSummary
from mosaic_it.errors import describe_os_error
from mosaic_it.io.atomic import atomic_writer, sync_data
from mosaic_it.io.fingerprint import content_digest
from mosaic_it.io.jsoncodec import dumps_bytes
from mosaic_it.io.jsonfiles import is_jsonl
from mosaic_it.io.nofollow import (
    NotAFile,
    check_real_dir,
    describe_path,
    open_or_create,
    write_new_text,
)
from mosaic_it.io.outputs import PathError
from mosaic_it.records import MosaicSpec, Sample

SampleToDict = Callable[[Sample], dict[str, Any]]
MANIFEST = "manifest.json"


def work_dir_for(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(f".{output.name}.mosaic-parts")


def _part(work: Path, epoch: int) -> Path:
    return work / f"epoch-{epoch:05d}.jsonl"


@dataclass(frozen=True)
class EpochJob:
    """What writing one epoch's part needs (forked workers inherit it: nothing is pickled)."""

    mosaicker: Mosaicker
    prepared: Prepared
    to_dict: SampleToDict
    work: Path


@dataclass
class EpochResult:
    """What writing one epoch's part found: its summary, its grouping counters and late
    rejects (sent back from a worker, added to the run's once)."""

    summary: RunSummary
    stats: GroupingStats
    late_rejects: list[int]


def _write_epoch(job: EpochJob, epoch: int) -> EpochResult:
    """Write one epoch's samples to its part file."""
    prepared, grouper = job.prepared, job.prepared.grouper
    summary = RunSummary()
    prepared_epoch = Prepared(grouper, prepared.admitted, summary, prepared.positions)
    final = _part(job.work, epoch)
    partial = final.with_suffix(".partial")
    mark = grouper.mark()
    with fewer_collections(), open(open_or_create(partial), "wb") as out:
        out.truncate(0)
        lines: list[bytes] = []
        for sample in job.mosaicker.run_epoch(prepared_epoch, epoch):
            lines.append(dumps_bytes(job.to_dict(sample)))
            if len(lines) >= 512:
                out.write(b"\n".join(lines) + b"\n")
                lines.clear()
        if lines:
            out.write(b"\n".join(lines) + b"\n")
    os.replace(partial, final)
    return EpochResult(summary, *grouper.take_since(mark))


def fingerprint(mosaicker: Mosaicker, source: str | Path | None, extra: dict[str, Any]) -> str:
    """What must match for finished epochs to be reused: the content of the input (see
    :func:`.fingerprint.content_digest`), of the rule pack and of the tokenizer, the template,
    every option and the package version. A hub input or tokenizer counts by name.

    A tokenizer file counts by the digest of what the tokenizer was built from
    (:attr:`.Tokenizer.digest`: a GGUF file's tokenizer metadata, not its gigabytes of
    weights) with its BOS and EOS tokens; a tokenizer directory by all its files' content (its
    ``tokenizer_config.json`` may hold the chat template)."""
    from mosaic_it.version import __version__

    config = mosaicker.config
    tokenizer: str | None = config.tokenizer
    if tokenizer is not None and Path(tokenizer).exists():
        built = mosaicker.tokenizer
        if Path(tokenizer).is_file() and built.digest is not None:
            tokenizer = f"{built.digest}\0{built.bos_token}\0{built.eos_token}"
        else:
            tokenizer = content_digest(tokenizer)
    info: dict[str, Any] = {
        "config": config.to_dict(),
        "tokenizer": [mosaicker.tokenizer.name, tokenizer],
        "rule_pack": hashlib.sha256(
            json.dumps(mosaicker.pack.data, sort_keys=True).encode()
        ).hexdigest(),
        "template": mosaicker.template.name,
        "version": __version__,
        "extra": extra,
    }
    if source is not None:
        info["input"] = content_digest(source)
    return hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()


def _finished_epochs(
    work: Path, epochs: int, fingerprint_value: str, note: Callable[[str], None]
) -> set[int]:
    """The epochs an interrupted run of the same input and options finished in ``work``."""
    manifest_path = work / MANIFEST
    _check_work_dir(work)
    if not manifest_path.exists():
        note(f"--resume: nothing to resume ({work} does not exist); ran every epoch")
        return set()
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        manifest = {}
    if manifest.get("fingerprint") != fingerprint_value:
        note(
            f"--resume: the parts in {work} were made from another input, rule pack, "
            "tokenizer or options; they were discarded and every epoch ran again"
        )
        return set()
    done = {e for e in range(epochs) if describe_path(_part(work, e)) == "a regular file"}
    note(
        f"--resume: reused epoch(s) {', '.join(map(str, sorted(done)))} from {work}"
        if done
        else f"--resume: no finished epoch in {work}; ran every epoch"
    )
    return done


def _open_work_dir(work: Path, epochs: int, fingerprint_value: str, keep: bool) -> None:
    """Make the work directory (cleared first unless ``keep``) and its manifest."""
    manifest_path = work / MANIFEST
    _check_work_dir(work)
    if not keep and work.exists():
        if describe_path(manifest_path) != "a regular file" and any(work.iterdir()):
            raise PathError(
                f"{work}: a directory this tool did not write is in the way of the "
                "run's parts; move it away"
            )
        shutil.rmtree(work)
    try:
        work.mkdir(parents=True, exist_ok=True)
        write_new_text(
            manifest_path, json.dumps({"fingerprint": fingerprint_value, "epochs": epochs})
        )
        for stale in work.glob("*.partial"):
            if describe_path(stale) == "a regular file":
                stale.unlink()
    except OSError as exc:
        raise PathError(describe_os_error(exc, "cannot write the run's parts", path=work)) from None


def _check_work_dir(work: Path) -> None:
    """Refuse a work directory that is a link (or no directory): never written through."""
    try:
        check_real_dir(work)
    except NotAFile as exc:
        raise PathError(
            f"{work}: {exc.strerror}; it holds a run's parts for --resume and is never "
            "written through: remove it (and see who put it there), then run again"
        ) from None


def write_run(
    mosaicker: Mosaicker,
    prepared: Prepared,
    output: str | Path,
    *,
    to_dict: SampleToDict = Sample.to_record,
    workers: int = 1,
    resume: bool = False,
    fingerprint_value: str = "",
    note: Callable[[str], None] = lambda text: None,
) -> RunSummary:
    """Run every epoch into ``output`` (JSON list or JSONL by extension), atomically.

    ``note`` is told what ``resume`` found (the epochs reused, or why none were)."""
    epochs = mosaicker.config.epochs
    work = work_dir_for(output)
    done = _finished_epochs(work, epochs, fingerprint_value, note) if resume else set()
    _open_work_dir(work, epochs, fingerprint_value, keep=bool(done))

    summary = prepared.summary
    summary.resumed_epochs = sorted(done)
    todo = [e for e in range(epochs) if e not in done]
    t0 = time.perf_counter()
    job = EpochJob(mosaicker, prepared, to_dict, work)
    # each epoch is appended to the output as soon as it and those before it are written,
    # while the workers go on with the later ones: at the end only the last is left to copy
    try:
        with (
            _EpochConcatenation(output, work) as concatenation,
            closing(_write_epochs(job, todo, workers)) as results,
        ):
            for e in range(epochs):
                if e in done:
                    _count_part(summary, _part(work, e))
                else:
                    result = _next_epoch(results, output, work)
                    summary.merge(result.summary)
                    prepared.grouper.stats.add(result.stats)
                    prepared.grouper.late_rejects.extend(result.late_rejects)
                concatenation.append(_part(work, e))
            concatenation.end()
    except BaseException:  # interrupted, or failed: keep only what --resume can use
        keep_for_resume(work)
        raise
    shutil.rmtree(work, ignore_errors=True)
    mosaicker.finish(prepared, time.perf_counter() - t0)
    return summary


def keep_for_resume(work: Path) -> list[Path]:
    """After a run that did not finish (its workers ended): the finished epochs and the
    manifest stay in ``work`` for ``--resume``, unfinished parts are removed, and so is
    ``work`` itself when no epoch had finished. Returns the finished epochs kept."""
    if describe_path(work) != "a directory":
        return []
    for partial in work.glob("*.partial"):
        if describe_path(partial) == "a regular file":
            partial.unlink()
    kept = sorted(work.glob("epoch-*.jsonl"))
    if not kept:
        shutil.rmtree(work, ignore_errors=True)
    return kept


def _write_epochs(
    job: EpochJob, epochs: list[int], workers: int
) -> Generator[EpochResult, None, None]:
    """Write the parts of ``epochs``, here or on ``workers`` forked processes."""
    bar = None
    if job.mosaicker.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(epochs), desc="epochs", unit="epoch", leave=False)
    try:
        if workers <= 1 or len(epochs) <= 1:
            for e in epochs:
                yield _write_epoch(job, e)
                if bar is not None:
                    bar.update(1)
            return
        # forked: the workers share the counted records; nothing large is pickled
        with fork_pool(min(workers, len(epochs)), "grouping epochs", "epochs", job) as pool:
            for result in pool.map(_write_epoch, epochs):
                yield result
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _count_part(summary: RunSummary, part: Path) -> None:
    """Summary counters of an epoch reused from an earlier, interrupted run."""
    with open(part, encoding="utf-8") as lines:
        for line in lines:
            summary.add_spec(MosaicSpec.from_dict(json.loads(line)["mosaic"]))


class _EpochConcatenation:
    """The output, made of the epochs' part files (JSONL lines) appended in order, as JSONL or
    a JSON list; written under a temporary name and renamed into place only when the block
    ends without error (:func:`.atomic_writer`). A failure to write it says which epochs are
    kept in ``work`` for ``--resume``."""

    def __init__(self, output: str | Path, work: Path) -> None:
        self.output, self.work = output, work
        self.jsonl = is_jsonl(output)
        self.first = True  # no line written yet

    def __enter__(self) -> _EpochConcatenation:
        self._writer = atomic_writer(self.output)
        try:
            self.out = self._writer.__enter__()
        except PathError as exc:
            raise self._kept(exc) from None
        if not self.jsonl:
            self.out.write("[")
        return self

    def append(self, part: Path) -> None:
        out = self.out
        if self.jsonl:
            out.flush()
            with open(part, "rb") as src:
                _copy_bytes(src, out)
        else:
            with open(part, encoding="utf-8") as src:
                for line in src:
                    out.write("\n  " if self.first else ",\n  ")
                    out.write(line.rstrip("\n"))
                    self.first = False
            out.flush()
        # on its way to the disk while later epochs are made: the final fsync waits for less
        sync_data(out.fileno())

    def end(self) -> None:
        if not self.jsonl:
            self.out.write("]\n" if self.first else "\n]\n")

    def __exit__(self, *exc: Any) -> bool | None:
        try:
            return self._writer.__exit__(*exc)
        except PathError as error:  # the output's own failure (disk full, read-only...)
            raise self._kept(error) from None

    def _kept(self, error: PathError) -> PathError:
        if not any(self.work.glob("epoch-*.jsonl")):
            return error
        return PathError(f"{error}; {_kept_for_resume(self.work)}")


def _next_epoch(results: Iterator[EpochResult], output: str | Path, work: Path) -> EpochResult:
    """The next epoch's result; a failure to write its part, or a worker that died, names
    what is kept."""
    try:
        return next(results)
    except WorkerDied as exc:  # killed, or out of memory: the finished epochs stay too
        if not any(work.glob("epoch-*.jsonl")):
            raise
        raise WorkerDied(
            f"{exc}; the finished epochs are kept in {work}: run the same command with "
            "--resume to reuse them"
        ) from None
    except OSError as exc:  # disk full, read-only...: the finished epochs stay for --resume
        raise PathError(
            f"{describe_os_error(exc, 'cannot write')}; {output} was not touched; "
            + _kept_for_resume(work)
        ) from None


def _kept_for_resume(work: Path) -> str:
    return (
        f"the finished epochs are kept in {work}: free space (or fix the cause) and run the same "
        "command with --resume"
    )


def _copy_bytes(src: BinaryIO, out: TextIO) -> None:
    """Append a whole file's bytes to ``out`` (flushed), in the kernel where it can."""
    fd = out.fileno()
    start = os.lseek(fd, 0, os.SEEK_CUR)
    size = os.fstat(src.fileno()).st_size
    try:
        done = 0
        while done < size:
            n = os.copy_file_range(src.fileno(), fd, size - done)
            if n == 0:
                raise OSError("short copy")
            done += n
        return
    except (AttributeError, OSError):  # no copy_file_range, or not between these files
        os.ftruncate(fd, start)
        os.lseek(fd, start, os.SEEK_SET)
        src.seek(0)
    shutil.copyfileobj(src, out.buffer, 1 << 20)
    out.buffer.flush()
