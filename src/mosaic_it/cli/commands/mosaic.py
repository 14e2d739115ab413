"""``mosaic-it mosaic INPUT OUTPUT [options]``: turn an instruction dataset into a Mosaic-IT
dataset, on this machine (epochs in worker processes, resumable) or on Ray (``--engine ray``,
:mod:`mosaic_it.cli.commands.mosaic_ray`)."""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from mosaic_it.budget.special import SPECIAL_TOKEN_MODES
from mosaic_it.budget.templates import TEMPLATE_NAMES
from mosaic_it.cli.commands import mosaic_ray
from mosaic_it.cli.recipe import apply_recipe, effective_config
from mosaic_it.cli.registry import Arguments, Command
from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker
from mosaic_it.engine.parallel import ReadAhead, Reader, usable_cpus
from mosaic_it.executors.local import fingerprint, keep_for_resume, work_dir_for, write_run
from mosaic_it.io.assemble import Assembly, RunOutputs, finish_run, refuse_empty_run
from mosaic_it.io.files import (
    EXAMPLE,
    InvalidRecord,
    config_path_for,
    example_path,
    input_kind,
    output_kind,
    read_records,
)
from mosaic_it.io.formats import FORMATS, sample_to_row
from mosaic_it.io.outputs import Output, RunInterrupted, guard, same_file
from mosaic_it.limits import MAX_WORKERS, bound
from mosaic_it.method.sizing import WRAP_MODES
from mosaic_it.method.strategies.base import registered
from mosaic_it.records import Record
from mosaic_it.signals import signal_of


def _strategies(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.replace(",", "+").split("+") if p.strip())
    for p in parts:
        if p not in registered():
            raise argparse.ArgumentTypeError(
                f"unknown strategy {p!r}; use a +-joined subset of {'+'.join(registered())}"
            )
    return parts


def declare(a: Arguments) -> None:
    """Every option of ``mosaic``, in the order of its help (and of OUTPUT.config.yaml)."""
    _declare_data(a)
    _declare_method(a, MosaicConfig())
    _declare_run(a, MosaicConfig())
    _declare_ray(a)


def _declare_data(a: Arguments) -> None:
    """What is read and what is written."""
    a.add(
        "input",
        nargs="?",
        help="records: JSON list, JSONL, Parquet, a datasets save_to_disk directory or a "
        f"hub dataset name; Alpaca, ShareGPT, messages or prompt-completion ({EXAMPLE}: "
        "the bundled example)",
    )
    a.add(
        "output",
        nargs="?",
        help="where to write the samples: .json (a list), .jsonl, .parquet, or a "
        "directory (no extension) for a datasets save_to_disk directory",
    )
    a.add(
        "--config",
        metavar="YAML",
        help="a recipe holding any of these options (options given here override it); "
        "every run writes its effective one to OUTPUT.config.yaml",
    )
    a.add(
        "--input-format",
        choices=list(FORMATS),
        default=None,
        help="format of the input records (default: detected from the first record)",
    )
    a.add(
        "--split",
        default=None,
        help="split of a datasets directory or hub dataset (default: train)",
    )
    a.add(
        "--output-format",
        choices=list(FORMATS),
        default="alpaca",
        help="format of the output records (default %(default)s)",
    )
    a.add(
        "--keep-originals",
        action="store_true",
        help='also write every original pair that fits the budget, marked "mosaic": null',
    )
    a.add(
        "--keep-multiturn",
        action="store_true",
        help='also write multi-turn records as they were, marked "mosaic": null '
        "(default: left out; counted either way)",
    )
    a.add(
        "--dataset-info",
        metavar="FILE",
        help="add the output's LLaMA-Factory entry to this dataset_info.json",
    )


def _declare_method(a: Arguments, d: MosaicConfig) -> None:
    """How the samples are grouped and laid out, and the budget they fit."""
    a.add(
        "--epochs",
        type=int,
        default=d.epochs,
        help="times the records are reshuffled and grouped (default %(default)s)",
    )
    a.add(
        "--wrap-mode",
        choices=list(WRAP_MODES),
        default=d.wrap_mode,
        help="distribution of instructions per sample (default %(default)s)",
    )
    a.add(
        "--max-instructions",
        type=int,
        default=d.max_instructions,
        help="most instructions in one sample, M (default %(default)s)",
    )
    a.add(
        "--max-tokens",
        type=int,
        default=d.max_tokens,
        help="token budget of one rendered training sequence (default %(default)s)",
    )
    a.add(
        "--template",
        choices=list(TEMPLATE_NAMES),
        default=d.template,
        help="sequence the budget counts: vicuna = FastChat Vicuna v1.1 with BOS/EOS; "
        "chatml; llama3; auto = the --tokenizer's own chat_template; none = "
        "instruction and response tokenized apart, counts summed; reference = the "
        "reference scripts' count: instruction + response joined, no BOS/EOS, strictly "
        "below the budget (default %(default)s)",
    )
    a.add(
        "--tokenizer",
        default=None,
        help="tokenizer.json, a directory holding one, a SentencePiece .model, or a hub "
        "name (online); default: the bundled Llama-family 32k tokenizer",
    )
    a.add(
        "--strategies",
        type=_strategies,
        default=d.strategies,
        help="+-joined strategies drawn with equal chance; every sample gets the format "
        "layer (default format+permute+maskout)",
    )
    a.add(
        "--rules",
        default=None,
        help="a rule pack JSON replacing the bundled one (or extending it with "
        '"extends": "default")',
    )
    a.add("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")


def _declare_run(a: Arguments, d: MosaicConfig) -> None:
    """Side files, record handling, workers."""
    a.add(
        "--rejects",
        metavar="FILE",
        help="write records left out (too long, invalid, special tokens) here",
    )
    a.add("--stats", metavar="FILE", help="write the run summary here as JSON")
    a.add(
        "--special-tokens",
        choices=list(SPECIAL_TOKEN_MODES),
        default=d.special_tokens,
        help="records whose text holds a special token of the tokenizer, a control "
        "string of the template or a well-known chat-control string: skip (left out, "
        "counted, listed in --rejects), keep, or error (default %(default)s)",
    )
    a.add(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="a malformed record stops the run (raise) or is skipped and reported",
    )
    a.add(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="progress bar on stderr (auto: only on a terminal)",
    )
    a.add(
        "--workers",
        type=int,
        default=0,
        help="processes counting tokens, then running epochs, side by side (default "
        "0: one per core this process may use, also the most unless "
        "--force-workers); the output is the same for any number",
    )
    a.add(
        "--force-workers",
        action="store_true",
        help="run --workers processes even when that is more than the usable cores",
    )


def _declare_ray(a: Arguments) -> None:
    """The ray engine's options, and resuming."""
    a.add(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this machine; ray: Ray Data on a local or remote cluster (extra "
        "mosaic-it[ray]; INPUT: JSONL/Parquet file, directory or glob; OUTPUT: a directory)",
    )
    a.add(
        "--shards",
        type=int,
        default=0,
        help="ray engine: shards grouped independently (default: 2 per CPU of the cluster)",
    )
    a.add(
        "--shard-format",
        choices=["jsonl", "parquet"],
        default="jsonl",
        help="ray engine: file type of the output shards (default %(default)s)",
    )
    a.add(
        "--ray-address",
        default=None,
        help="ray engine: address of a running cluster (default: start a local one)",
    )
    a.add(
        "--resume",
        action="store_true",
        help="reuse the finished epochs of an interrupted run of the same command",
    )


def prepare(args: argparse.Namespace, arguments: Arguments, argv: list[str]) -> None:
    """Merge a --config recipe into the options, check INPUT and OUTPUT are known, and keep the
    run's effective options (written beside its output)."""
    if args.config:
        apply_recipe(arguments, args, argv, args.config)
    if not args.input or not args.output:
        raise ValueError("mosaic: give INPUT and OUTPUT, on the command line or in --config")
    args.effective_config = effective_config(arguments.actions, args, config_path_for(args.output))


def workers_for(requested: int, force: bool = False) -> tuple[int, str]:
    """The number of worker processes to run, and a note when it is not what was asked."""
    cores = usable_cpus()
    if requested < 0:
        raise ValueError(f"--workers: must be 0 (one per usable core) or more, got {requested}")
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


def run_outputs(args: argparse.Namespace) -> RunOutputs:
    """What the run writes, as the executors and the output assembly take it."""
    return RunOutputs(
        output=args.output,
        output_format=args.output_format,
        rejects=args.rejects,
        stats=args.stats,
        dataset_info=args.dataset_info,
        keep_originals=args.keep_originals,
        keep_multiturn=args.keep_multiturn,
    )


def run(args: argparse.Namespace) -> int:
    # every MosaicConfig field is a flag of the same name
    config = MosaicConfig(**{f.name: getattr(args, f.name) for f in fields(MosaicConfig)})
    source = example_path() if args.input == EXAMPLE else Path(args.input)
    workers, workers_note = workers_for(args.workers, args.force_workers)
    if args.engine == "ray":
        return mosaic_ray.run(args, config, str(source), run_outputs(args))
    kind = output_kind(args.output)
    outputs = [
        Output(args.output, "OUTPUT", "dir" if kind == "datasets" else "file"),
        Output(args.rejects, "--rejects"),
        Output(args.stats, "--stats"),
        Output(args.dataset_info, "--dataset-info"),
        Output(config_path_for(args.output), "OUTPUT.config.yaml"),
    ]
    inputs = {"INPUT": source, "--rules": args.rules, "--tokenizer": args.tokenizer}
    if args.config and not same_file(args.config, config_path_for(args.output)):
        inputs["--config"] = args.config  # the run's own OUTPUT.config.yaml may be rerun
    code = None
    try:
        with guard(inputs, outputs):
            if workers_note and not args.quiet:
                print(f"mosaic-it: note: {workers_note}", file=sys.stderr)
            code = _mosaic_local(args, config, source, kind, workers)
    except KeyboardInterrupt:
        if code is None:
            raise
        # the run was done: the signal came as its locks were released (one may be left; the
        # next run on this output reuses and removes it)
    assert code is not None
    return code


def _mosaic_local(
    args: argparse.Namespace, config: MosaicConfig, source: Path, kind: str, workers: int
) -> int:
    assembly = Assembly(run_outputs(args), kind)
    try:
        return _mosaic_into(args, config, source, workers, assembly)
    except KeyboardInterrupt as exc:  # a signal (see mosaic_it.signals): say what was kept
        raise _interrupted(args.output, assembly, exc) from None


def _mosaic_into(
    args: argparse.Namespace, config: MosaicConfig, source: Path, workers: int, assembly: Assembly
) -> int:
    kind = assembly.kind
    progress = sys.stderr.isatty() if args.progress == "auto" else args.progress == "on"
    invalid: list[InvalidRecord] = []
    on_conversation = assembly.keep_conversation if assembly.spool is not None else None

    def read(invalid: list[InvalidRecord]) -> Iterator[Record]:
        return read_records(
            source,
            on_error=args.on_error,
            invalid=invalid,
            input_format=args.input_format,
            split=args.split,
            on_conversation=on_conversation,
        )

    with _reading(read, invalid, source, workers, on_conversation is None) as records:
        mosaicker = Mosaicker(config, progress=progress)  # loads the tokenizer meanwhile
        prepared = mosaicker.prepare(assembly.noting_systems(records), invalid, workers=workers)
    prepared.summary.workers = min(workers, config.epochs)
    if not prepared.admitted:
        refuse_empty_run(assembly.outputs, config, mosaicker.summary, source)
    extra = {
        "on_error": args.on_error,
        "input_format": args.input_format,
        "split": args.split,
        "output_format": args.output_format,
    }
    write_run(
        mosaicker,
        prepared,
        assembly.samples_path,
        to_dict=functools.partial(sample_to_row, fmt=args.output_format),
        workers=workers,
        resume=args.resume,
        fingerprint_value=fingerprint(
            mosaicker, source if input_kind(source) != "hub" else None, extra
        ),
        note=lambda text: None if args.quiet else print(f"mosaic-it: {text}", file=sys.stderr),
    )
    summary = mosaicker.summary
    written = assembly.write(summary.samples_written, prepared.grouper.records, prepared.admitted)
    output = {"format": args.output_format, "type": kind, "rows": written}
    report = finish_run(assembly.outputs, config, summary, output, args.effective_config)
    if not args.quiet:
        print(report, file=sys.stderr)
    return 0


READ_AHEAD_MIN_BYTES = 4 << 20  # a smaller input is read before the tokenizer has loaded


@contextmanager
def _reading(
    read: Reader, invalid: list[InvalidRecord], source: Path, workers: int, alone: bool
) -> Iterator[Iterable[Record]]:
    """The input's records: read ahead on a process of their own (:class:`.ReadAhead`) for a
    file of at least :data:`READ_AHEAD_MIN_BYTES` when the run has several workers and the
    reading hands nothing else back (``alone``: no conversation passed through), else here."""
    try:  # a file that cannot be read is reported by the reader, in its words
        size = source.stat().st_size if source.is_file() else 0
    except OSError:
        size = 0
    ahead = workers > 1 and alone and input_kind(source) in ("json", "jsonl", "parquet")
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


COMMAND = Command(
    "mosaic",
    "turn an instruction dataset into a Mosaic-IT dataset",
    declare,
    run,
    prepare=prepare,
)
