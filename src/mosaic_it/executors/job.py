"""One mosaic run as a value (:class:`MosaicJob`), and the one way every executor runs it.

A job says what is read, what is written (the output and its side files: rejects, stats,
dataset_info, the effective options), the method's config and how records are handled; an
executor (:class:`~mosaic_it.executors.local.LocalExecutor`,
:class:`~mosaic_it.executors.ray.RayExecutor`) says only where the work runs.
:meth:`Executor.run` is the one run of a job, whoever starts it (the command line, the Python
API :func:`mosaic_it.executors.mosaic_file`, a benchmark):

1. the executor refuses options it cannot honour (:meth:`Executor.check`);
2. the output guard checks every path and locks every output (:func:`.outputs.guard`);
3. the executor schedules the work (:meth:`Executor.execute`): reading, counting and grouping
   through the one engine, rows from the one :class:`~mosaic_it.io.assemble.RowAssembly`;
4. the side files are written (:func:`~mosaic_it.io.assemble.finish_run`) and a
   :class:`JobResult` comes back: the summary, what was written, and the account of the run.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mosaic_it.engine.mosaicker import MosaicConfig
from mosaic_it.engine.summary import RunSummary
from mosaic_it.errors import OptionError
from mosaic_it.executors.options import render_options
from mosaic_it.io.assemble import RunOutputs, finish_run, write_config
from mosaic_it.io.formats import check_format
from mosaic_it.io.outputs import Output, guard, same_file
from mosaic_it.io.readers import resolve_input
from mosaic_it.io.writers import config_path_for

STDIO = "-"  # INPUT: JSONL from standard input; OUTPUT: JSONL to standard output
Note = Callable[[str], None]
_log = logging.getLogger("mosaic_it")


@dataclass(frozen=True)
class MosaicJob:
    """Everything one mosaic run reads and writes, and how records are handled: the same
    fields as the options of ``mosaic-it mosaic`` that are not about where the work runs
    (those are the executor's: workers and resume, or shards and a cluster address).

    ``input`` and ``output`` take what the command line takes (``builtin:example``, a hub
    name, a directory; ``-`` for standard input or output). ``options_text`` is the YAML
    written beside the output (``OUTPUT.config.yaml``); left ``None`` it is rendered from the
    job and the executor, as the command line renders the same options.
    """

    input: str | os.PathLike[str]
    output: str | os.PathLike[str]
    config: MosaicConfig = field(default_factory=MosaicConfig)
    input_format: str | None = None
    split: str | None = None
    output_format: str = "alpaca"
    keep_originals: bool = False
    keep_multiturn: bool = False
    dataset_info: str | os.PathLike[str] | None = None
    rejects: str | os.PathLike[str] | None = None
    stats: str | os.PathLike[str] | None = None
    on_error: str = "raise"
    progress: bool = False
    recipe: str | os.PathLike[str] | None = None  # a --config file the options came from
    options_text: str | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "dataset_info", "rejects", "stats", "recipe"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.fspath(value))
        check_format(self.output_format)
        if self.input_format is not None:
            check_format(self.input_format)
        if self.on_error not in ("raise", "skip"):
            raise OptionError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")
        if STDIO in (self.rejects, self.stats, self.dataset_info):
            raise OptionError(
                "'-' (standard output) is for OUTPUT only; name a file for --rejects, --stats "
                "and --dataset-info"
            )

    @property
    def source(self) -> str | Path:
        """The input as read: ``-``, a hub name, or a path (the bundled example's file)."""
        path = resolve_input(str(self.input))
        return STDIO if path == STDIO else Path(path)

    @property
    def reads_stdin(self) -> bool:
        return self.input == STDIO

    @property
    def writes_stdout(self) -> bool:
        return self.output == STDIO

    @property
    def outputs(self) -> RunOutputs:
        """What the run writes, as the output assembly takes it."""
        return RunOutputs(
            output=str(self.output),
            output_format=self.output_format,
            rejects=_text(self.rejects),
            stats=_text(self.stats),
            dataset_info=_text(self.dataset_info),
            keep_originals=self.keep_originals,
            keep_multiturn=self.keep_multiturn,
        )

    def options(self, executor: Executor) -> dict[str, Any]:
        """Every option of the run by its ``mosaic-it mosaic`` name, in the command's order."""
        values: dict[str, Any] = {
            "input": self.input,
            "output": self.output,
            "input_format": self.input_format,
            "split": self.split,
            "output_format": self.output_format,
            "keep_originals": self.keep_originals,
            "keep_multiturn": self.keep_multiturn,
            "dataset_info": self.dataset_info,
        }
        values.update(self.config.to_dict())
        values["strategies"] = tuple(self.config.strategies)
        values.update(
            rejects=self.rejects,
            stats=self.stats,
            special_tokens=values.pop("special_tokens"),
            on_error=self.on_error,
            progress="on" if self.progress else "off",
        )
        values.update(executor.options())
        values["quiet"] = True  # a job prints nothing; its caller decides what to show
        values["verbose"] = False
        return values

    def options_yaml(self, executor: Executor) -> str:
        """The text of ``OUTPUT.config.yaml``: :attr:`options_text`, or rendered."""
        if self.options_text is not None:
            return self.options_text
        return render_options(self.options(executor), config_path_for(str(self.output)))


def _text(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else os.fspath(value)


@dataclass
class Executed:
    """What an executor hands back: the run's summary and what its output holds."""

    summary: RunSummary
    output: dict[str, Any]


@dataclass
class JobResult:
    """One finished run: its summary, the output's description (as in the stats file), the
    stats document, where the options went, and the account the command line prints."""

    summary: RunSummary
    output: dict[str, Any]
    stats: dict[str, Any]
    report: str


class Executor(ABC):
    """Where a job's work runs. Subclasses only schedule (:meth:`execute`); :meth:`run` does
    what every run does, once: the checks, the guard and locks, the side files."""

    name: ClassVar[str]

    def run(self, job: MosaicJob, *, note: Note | None = None) -> JobResult:
        """Run ``job``: write its output and side files, return its result. ``note`` is told
        what the run decided on its own (fewer workers, epochs reused); default: the
        ``mosaic_it`` logger."""
        say: Note = note if note is not None else _log.info
        self.check(job)
        result: JobResult | None = None
        try:
            with guard(self.guarded_inputs(job), self.guarded_outputs(job)):
                executed = self.execute(job, say)
                text = job.options_yaml(self)
                stats: dict[str, Any] = {}

                def place(written: dict[str, Any]) -> str | None:
                    stats.update(written)
                    return self.place_options(job, written, text)

                report = finish_run(
                    job.outputs, job.config, executed.summary, executed.output, text, place
                )
                result = JobResult(executed.summary, executed.output, stats, report)
        except KeyboardInterrupt:
            if result is None:
                raise
            # the run was done: the signal came as its locks were released (one may be left;
            # the next run on this output reuses and removes it)
        assert result is not None
        return result

    def check(self, job: MosaicJob) -> None:
        """Refuse, before any work, what this executor cannot do with ``job``."""

    def options(self) -> dict[str, Any]:
        """This executor's options by their ``mosaic-it mosaic`` names (for the options file)."""
        return {}

    def guarded_inputs(self, job: MosaicJob) -> dict[str, Any]:
        """What the run reads, by the names a message gives them."""
        inputs: dict[str, Any] = {
            "INPUT": None if job.reads_stdin else job.source,
            "--rules": job.config.rules,
            "--tokenizer": job.config.tokenizer,
        }
        if job.recipe and not same_file(job.recipe, config_path_for(str(job.output))):
            inputs["--config"] = job.recipe  # the run's own OUTPUT.config.yaml may be rerun
        return inputs

    @abstractmethod
    def guarded_outputs(self, job: MosaicJob) -> list[Output]:
        """What the run writes, checked and locked for the whole run."""

    @abstractmethod
    def execute(self, job: MosaicJob, note: Note) -> Executed:
        """Schedule the work: read, count, group and write the output's rows."""

    def place_options(self, job: MosaicJob, stats: Mapping[str, Any], text: str) -> str | None:
        """Write the effective options (beside the output); returns where they went (None:
        nowhere, as beside standard output)."""
        if job.writes_stdout:
            return None
        return str(write_config(str(job.output), text))


def side_file_outputs(job: MosaicJob) -> list[Output]:
    """The side files every executor writes, for the guard."""
    return [
        Output(job.rejects, "--rejects"),
        Output(job.stats, "--stats"),
        Output(job.dataset_info, "--dataset-info"),
    ]
