"""``mosaic-it mosaic INPUT OUTPUT [options]``: turn an instruction dataset into a Mosaic-IT
dataset, on this machine (epochs in worker processes, resumable) or on Ray (``--engine ray``).

The handler only turns the options into a job (:class:`~mosaic_it.executors.job.MosaicJob`)
and an executor, runs it and prints its account: the run itself is the job's, the same for
the Python API (:func:`mosaic_it.executors.mosaic_file`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from mosaic_it.budget.special import SPECIAL_TOKEN_MODES
from mosaic_it.budget.templates import TEMPLATE_NAMES
from mosaic_it.cli.recipe import apply_recipe, effective_config
from mosaic_it.cli.registry import Arguments, Command
from mosaic_it.engine.mosaicker import MosaicConfig
from mosaic_it.errors import OptionError
from mosaic_it.executors import ray
from mosaic_it.executors.job import STDIO, Executor, MosaicJob
from mosaic_it.executors.local import LocalExecutor, workers_for
from mosaic_it.io.formats import FORMATS
from mosaic_it.io.readers import EXAMPLE
from mosaic_it.io.writers import config_path_for
from mosaic_it.method.sizing import WRAP_MODES
from mosaic_it.method.strategies.base import registered


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
        f"the bundled example; {STDIO}: JSONL from standard input)",
    )
    a.add(
        "output",
        nargs="?",
        help="where to write the samples: .json (a list), .jsonl, .parquet, or a "
        "directory (no extension) for a datasets save_to_disk directory; "
        f"{STDIO}: JSONL to standard output (messages stay on stderr)",
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
        help="local: this machine; ray: Ray tasks on a local or remote cluster (extra "
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
        raise OptionError("mosaic: give INPUT and OUTPUT, on the command line or in --config")
    args.effective_config = effective_config(arguments.actions, args, config_path_for(args.output))


def job_of(args: argparse.Namespace) -> MosaicJob:
    """The run the options describe (every MosaicConfig field is a flag of the same name)."""
    config = MosaicConfig(**{f.name: getattr(args, f.name) for f in fields(MosaicConfig)})
    return MosaicJob(
        args.input,
        args.output,
        config,
        input_format=args.input_format,
        split=args.split,
        output_format=args.output_format,
        keep_originals=args.keep_originals,
        keep_multiturn=args.keep_multiturn,
        dataset_info=args.dataset_info,
        rejects=args.rejects,
        stats=args.stats,
        on_error=args.on_error,
        progress=sys.stderr.isatty() if args.progress == "auto" else args.progress == "on",
        recipe=args.config,
        options_text=args.effective_config,
    )


# options of the local executor that the ray engine cannot honour, and why
RAY_REFUSED = {
    "resume": "the ray engine runs each shard as one task; rerun the whole job",
    "workers": "the ray engine runs one task per shard; use --shards",
}


def executor_of(args: argparse.Namespace) -> Executor:
    """Where the run goes: this machine, or Ray."""
    workers_for(args.workers, args.force_workers)  # a bad --workers is refused for any engine
    if args.engine == "local":
        return LocalExecutor(args.workers, args.force_workers, args.resume)
    refused = [name for name in RAY_REFUSED if getattr(args, name)]
    if refused:  # the job's own options are the executor's to check
        raise OptionError(ray.refusal(refused, RAY_REFUSED))
    return ray.RayExecutor(args.shards, args.ray_address, args.shard_format, quiet=args.quiet)


def run(args: argparse.Namespace) -> int:
    """Turn the options into a job, run it where ``--engine`` says, print its account."""
    quiet = args.quiet

    def note(text: str) -> None:
        if not quiet:
            print(f"mosaic-it: {text}", file=sys.stderr)

    result = executor_of(args).run(job_of(args), note=note)
    if not quiet:
        print(result.report, file=sys.stderr)
    return 0


COMMAND = Command(
    "mosaic",
    "turn an instruction dataset into a Mosaic-IT dataset",
    declare,
    run,
    prepare=prepare,
)
