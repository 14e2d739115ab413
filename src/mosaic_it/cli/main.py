"""The command line: ``mosaic-it mosaic INPUT OUTPUT [options]``."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import fields
from itertools import chain
from pathlib import Path
from typing import Any

from mosaic_it import __version__
from mosaic_it.budget.special import SPECIAL_TOKEN_MODES
from mosaic_it.budget.templates import TEMPLATE_NAMES
from mosaic_it.budget.tokenizer import TokenizerError
from mosaic_it.cli.recipe import apply_recipe, effective_config
from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker
from mosaic_it.engine.parallel import WorkerDied, usable_cpus
from mosaic_it.executors.local import fingerprint, work_dir_for, write_run
from mosaic_it.io.files import (
    EXAMPLE,
    OUTPUT_KINDS,
    InputError,
    InvalidRecord,
    RowSpool,
    atomic_writer,
    config_path_for,
    example_path,
    input_kind,
    output_kind,
    read_json_lines,
    read_records,
    staging_path,
    write_json,
    write_records,
    write_rows,
)
from mosaic_it.io.formats import (
    FORMATS,
    conversation_to_row,
    dataset_info_entry,
    record_to_row,
    sample_to_row,
)
from mosaic_it.io.outputs import Output, RunInterrupted, describe_os_error, guard, same_file
from mosaic_it.method.rulepack import RulePackError, default_rules_path
from mosaic_it.method.sizing import WRAP_MODES
from mosaic_it.method.strategies import STRATEGIES
from mosaic_it.records import Record

EXIT_BAD_INPUT = 2
EXIT_WORKER_DIED = 3


def _strategies(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.replace(",", "+").split("+") if p.strip())
    for p in parts:
        if p not in STRATEGIES:
            raise argparse.ArgumentTypeError(
                f"unknown strategy {p!r}; use a +-joined subset of {'+'.join(STRATEGIES)}"
            )
    return parts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mosaic-it",
        description="Mosaic-IT: group instruction/response pairs into multi-instruction samples "
        "with meta-instructions about the answer's layout.",
    )
    parser.add_argument("--version", action="version", version=f"mosaic-it {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    d = MosaicConfig()
    m = sub.add_parser("mosaic", help="turn an instruction dataset into a Mosaic-IT dataset")
    m.add_argument(
        "input",
        nargs="?",
        help="records: JSON list, JSONL, Parquet, a datasets save_to_disk directory or a "
        f"hub dataset name; Alpaca, ShareGPT, messages or prompt-completion ({EXAMPLE}: "
        "the bundled example)",
    )
    m.add_argument(
        "output",
        nargs="?",
        help="where to write the samples: .json (a list), .jsonl, .parquet, or a "
        "directory (no extension) for a datasets save_to_disk directory",
    )
    m.add_argument(
        "--config",
        metavar="YAML",
        help="a recipe holding any of these options (options given here override it); "
        "every run writes its effective one to OUTPUT.config.yaml",
    )
    m.add_argument(
        "--input-format",
        choices=list(FORMATS),
        default=None,
        help="format of the input records (default: detected from the first record)",
    )
    m.add_argument(
        "--split",
        default=None,
        help="split of a datasets directory or hub dataset (default: train)",
    )
    m.add_argument(
        "--output-format",
        choices=list(FORMATS),
        default="alpaca",
        help="format of the output records (default %(default)s)",
    )
    m.add_argument(
        "--keep-originals",
        action="store_true",
        help='also write every original pair that fits the budget, marked "mosaic": null',
    )
    m.add_argument(
        "--keep-multiturn",
        action="store_true",
        help='also write multi-turn records as they were, marked "mosaic": null '
        "(default: left out; counted either way)",
    )
    m.add_argument(
        "--dataset-info",
        metavar="FILE",
        help="add the output's LLaMA-Factory entry to this dataset_info.json",
    )
    m.add_argument(
        "--epochs",
        type=int,
        default=d.epochs,
        help="times the records are reshuffled and grouped (default %(default)s)",
    )
    m.add_argument(
        "--wrap-mode",
        choices=list(WRAP_MODES),
        default=d.wrap_mode,
        help="distribution of instructions per sample (default %(default)s)",
    )
    m.add_argument(
        "--max-instructions",
        type=int,
        default=d.max_instructions,
        help="most instructions in one sample, M (default %(default)s)",
    )
    m.add_argument(
        "--max-tokens",
        type=int,
        default=d.max_tokens,
        help="token budget of one rendered training sequence (default %(default)s)",
    )
    m.add_argument(
        "--template",
        choices=list(TEMPLATE_NAMES),
        default=d.template,
        help="sequence the budget counts: vicuna = FastChat Vicuna v1.1 with BOS/EOS; "
        "chatml; llama3; auto = the --tokenizer's own chat_template; none = "
        "instruction and response tokenized apart, counts summed; reference = the "
        "reference scripts' count: instruction + response joined, no BOS/EOS, strictly "
        "below the budget (default %(default)s)",
    )
    m.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer.json, a directory holding one, a SentencePiece .model, or a hub "
        "name (online); default: the bundled Llama-family 32k tokenizer",
    )
    m.add_argument(
        "--strategies",
        type=_strategies,
        default=d.strategies,
        help="+-joined strategies drawn with equal chance; every sample gets the format "
        "layer (default format+permute+maskout)",
    )
    m.add_argument(
        "--rules",
        default=None,
        help="a rule pack JSON replacing the bundled one (or extending it with "
        '"extends": "default")',
    )
    m.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    m.add_argument(
        "--rejects",
        metavar="FILE",
        help="write records left out (too long, invalid, special tokens) here",
    )
    m.add_argument("--stats", metavar="FILE", help="write the run summary here as JSON")
    m.add_argument(
        "--special-tokens",
        choices=list(SPECIAL_TOKEN_MODES),
        default=d.special_tokens,
        help="records whose text holds a special token of the tokenizer, a control "
        "string of the template or a well-known chat-control string: skip (left out, "
        "counted, listed in --rejects), keep, or error (default %(default)s)",
    )
    m.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="a malformed record stops the run (raise) or is skipped and reported",
    )
    m.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="progress bar on stderr (auto: only on a terminal)",
    )
    m.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes counting tokens, then running epochs, side by side (default "
        "0: one per core this process may use, also the most unless "
        "--force-workers); the output is the same for any number",
    )
    m.add_argument(
        "--force-workers",
        action="store_true",
        help="run --workers processes even when that is more than the usable cores",
    )
    m.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this machine; ray: Ray Data on a local or remote cluster (extra "
        "mosaic-it[ray]; INPUT: JSONL/Parquet file, directory or glob; OUTPUT: a directory)",
    )
    m.add_argument(
        "--shards",
        type=int,
        default=0,
        help="ray engine: shards grouped independently (default: 2 per CPU of the cluster)",
    )
    m.add_argument(
        "--shard-format",
        choices=["jsonl", "parquet"],
        default="jsonl",
        help="ray engine: file type of the output shards (default %(default)s)",
    )
    m.add_argument(
        "--ray-address",
        default=None,
        help="ray engine: address of a running cluster (default: start a local one)",
    )
    m.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished epochs of an interrupted run of the same command",
    )
    m.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")

    r = sub.add_parser("rules", help="print the bundled rule pack (a starting point for --rules)")
    r.add_argument("--path", action="store_true", help="print its path instead of its content")

    # subcommands that live in their own modules: add_parser(sub) returns the handler
    from mosaic_it.apps import (
        cost,
        evaluate,
        make_eval,
        rl_prompts,
        score,
        split,
        train,
    )
    from mosaic_it.apps import (
        stats as report,
    )

    for add_parser in (
        train.add_parser,
        cost.add_parser,
        evaluate.add_parser,
        report.add_parser,
        make_eval.add_parser,
        score.add_parser,
        rl_prompts.add_parser,
        split.add_parser,
    ):
        handler = add_parser(sub)
        list(sub.choices.values())[-1].set_defaults(handler=handler)
    return parser


def workers_for(requested: int, force: bool = False) -> tuple[int, str]:
    """The number of worker processes to run, and a note when it is not what was asked."""
    cores = usable_cpus()
    if requested < 0:
        raise ValueError(f"--workers: must be 0 (one per usable core) or more, got {requested}")
    if requested == 0:
        return cores, ""
    if requested > cores and not force:
        return cores, (
            f"--workers {requested} is more than the {cores} usable core(s); ran "
            f"{cores} (pass --force-workers to run {requested})"
        )
    return requested, ""


def cmd_mosaic(args: argparse.Namespace) -> int:
    # every MosaicConfig field is a flag of the same name
    config = MosaicConfig(**{f.name: getattr(args, f.name) for f in fields(MosaicConfig)})
    source = example_path() if args.input == EXAMPLE else Path(args.input)
    workers, workers_note = workers_for(args.workers, args.force_workers)
    if args.engine == "ray":
        return cmd_mosaic_ray(args, config, str(source))
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
    with guard(inputs, outputs):
        if workers_note and not args.quiet:
            print(f"mosaic-it: note: {workers_note}", file=sys.stderr)
        return _mosaic_local(args, config, source, kind, workers)


def _mosaic_local(
    args: argparse.Namespace, config: MosaicConfig, source: Path, kind: str, workers: int
) -> int:
    fmt = args.output_format
    info: dict | None = None
    if args.dataset_info:
        dataset_info_entry(fmt, "", set())  # fails early for formats LLaMA-Factory cannot read
        if kind == "datasets":
            raise ValueError(
                "--dataset-info: LLaMA-Factory reads files, not save_to_disk directories; "
                "write .json, .jsonl or .parquet"
            )
        info = _read_dataset_info(Path(args.dataset_info))
    progress = sys.stderr.isatty() if args.progress == "auto" else args.progress == "on"
    mosaicker = Mosaicker(config, progress=progress)
    invalid: list[InvalidRecord] = []
    spool = RowSpool() if args.keep_multiturn else None
    columns: set[str] = set()

    def keep(conversation: object) -> None:
        row = conversation_to_row(conversation, fmt)  # type: ignore[arg-type]
        columns.update(row)
        spool.add(row)  # type: ignore[union-attr]

    def noting_systems(records: Iterator[Record]) -> Iterator[Record]:
        for r in records:
            if r.system:
                columns.add("system")
            yield r

    records = read_records(
        source,
        on_error=args.on_error,
        invalid=invalid,
        input_format=args.input_format,
        split=args.split,
        on_conversation=keep if spool is not None else None,
    )
    prepared = mosaicker.prepare(noting_systems(records), invalid, workers=workers)
    prepared.summary.workers = min(workers, config.epochs)
    if not prepared.admitted:
        _nothing_to_mosaic(args, mosaicker, source)
    # JSON/JSONL of samples alone are written in place; anything else is assembled afterwards
    direct = kind in ("json", "jsonl") and not args.keep_originals and spool is None
    target = Path(args.output) if direct else staging_path(args.output)
    extra = {
        "on_error": args.on_error,
        "input_format": args.input_format,
        "split": args.split,
        "output_format": fmt,
    }
    try:
        write_run(
            mosaicker,
            prepared,
            target,
            to_dict=functools.partial(sample_to_row, fmt=fmt),
            workers=workers,
            resume=args.resume,
            fingerprint_value=fingerprint(
                mosaicker, source if input_kind(source) != "hub" else None, extra
            ),
            note=lambda text: None if args.quiet else print(f"mosaic-it: {text}", file=sys.stderr),
        )
    except KeyboardInterrupt:
        work = work_dir_for(target)
        kept = sorted(work.glob("epoch-*.jsonl")) if work.is_dir() else []
        raise RunInterrupted(
            f"interrupted; {args.output} was not written or changed"
            + (
                f"; {len(kept)} finished epoch(s) kept in {work}: run the same command with "
                "--resume to reuse them"
                if kept
                else ""
            )
        ) from None
    summary = mosaicker.summary
    written = {"samples": summary.samples_written, "originals": 0, "multi_turn": 0}
    if kind in ("parquet", "datasets") and fmt in ("alpaca", "sharegpt"):
        columns.add("system")  # a column in every row of a table
    if not direct:
        originals: Iterator[dict] = iter(())
        if args.keep_originals:
            store = prepared.grouper.records
            originals = (record_to_row(store[i], fmt) for i in prepared.admitted)
            written["originals"] = len(prepared.admitted)
        if spool is not None:
            written["multi_turn"] = spool.count
        try:
            write_rows(
                args.output,
                chain(
                    read_json_lines(target), originals, spool.rows() if spool is not None else ()
                ),
                fmt,
                columns,
            )
        finally:
            target.unlink(missing_ok=True)
            if spool is not None:
                spool.close()
    if info is not None:
        _write_dataset_info(args.dataset_info, info, args.output, fmt, columns)
    _finish_run(args, config, summary, {"format": fmt, "type": kind, "rows": written})
    return 0


def _finish_run(
    args: argparse.Namespace, config: MosaicConfig, summary: Any, output: dict[str, Any]
) -> None:
    """What every executor writes after its samples: rejects, stats, the effective options
    beside the output, and the report on stderr."""
    stats = _write_side_files(args, config, summary, output)
    config_file = config_path_for(args.output)
    text = effective_config(_mosaic_parser(args), args, config_file)
    if output["type"] == "shards":
        from mosaic_it.executors.ray import write_side_files

        config_file = write_side_files(args.output, stats, summary.rejected + summary.invalid, text)
    elif not config_file.exists() or config_file.read_text(encoding="utf-8") != text:
        with atomic_writer(config_file) as out:
            out.write(text)
    if not args.quiet:
        written = output["rows"]
        more = "".join(
            f", {n} {what}"
            for what, n in (
                ("originals", written["originals"]),
                ("multi-turn records passed through", written["multi_turn"]),
            )
            if n
        )
        where = (
            f"{output['shards']} {output['shard_format']} shards in {args.output}"
            if output["type"] == "shards"
            else str(args.output)
        )
        print(
            f"mosaic-it: wrote {summary.samples_written} samples{more} to {where} "
            f"({output['format']}); options in {config_file}",
            file=sys.stderr,
        )
        print(summary.render(), file=sys.stderr)


def _write_side_files(
    args: argparse.Namespace, config: MosaicConfig, summary: Any, output: dict[str, Any] | None
) -> dict[str, Any]:
    """--rejects and --stats, each written atomically; returns the stats document."""
    if args.rejects:
        write_records(args.rejects, summary.rejected + summary.invalid)
    stats = {"config": config.to_dict(), "summary": summary.to_dict()}
    if output is not None:
        stats["output"] = output
    if args.stats:
        write_json(args.stats, stats)
    return stats


def _nothing_to_mosaic(args: argparse.Namespace, mosaicker: Mosaicker, source: Path) -> None:
    """No record can be mosaicked: say why (exit 2); OUTPUT is not written."""
    summary = mosaicker.summary
    if not summary.records_read:
        raise InputError(f"{source}: holds no records; {args.output} was not written")
    _write_side_files(args, mosaicker.config, summary, None)  # they say what was left out
    reasons = ", ".join(
        f"{n} {why}"
        for why, n in (
            (f"too long for --max-tokens {mosaicker.config.max_tokens}", len(summary.rejected)),
            ("invalid", sum(1 for r in summary.invalid if r["reason"] == "invalid")),
            ("multi-turn", sum(1 for r in summary.invalid if r["reason"] == "multi-turn")),
        )
        if n
    )
    first = (summary.rejected + summary.invalid)[0]["detail"]
    raise InputError(
        f"{source}: none of the {summary.records_read} records can be mosaicked ({reasons}; "
        f"first: {first}); {args.output} was not written"
        + ("; the list is in --rejects" if args.rejects else "; --rejects FILE lists them")
    )


def _read_dataset_info(path: Path) -> dict:
    """The dataset_info.json to add the output's entry to (checked before the run)."""
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            f"--dataset-info {path}: not valid JSON ({exc}); fix or remove it (it was not changed)"
        ) from None
    if not isinstance(info, dict):
        raise InputError(
            f"--dataset-info {path}: expected a JSON object of dataset entries, got "
            f"{type(info).__name__}; it was not changed"
        )
    return info


def _write_dataset_info(
    info_file: str, info: dict, output: str, fmt: str, columns: set[str]
) -> None:
    """Add (or replace) the output's entry in a LLaMA-Factory dataset_info.json."""
    path = Path(info_file)
    file_name = os.path.relpath(Path(output).resolve(), path.resolve().parent)
    info[Path(output).stem] = dataset_info_entry(fmt, file_name, columns)
    write_json(path, info)


# options of `mosaic` the ray engine cannot honour per shard, and why
RAY_REFUSED = {
    "split": "the ray engine reads JSONL or Parquet files, not datasets splits",
    "dataset_info": "LLaMA-Factory would read summary.json and rejects.jsonl beside the shards",
    "resume": "the ray engine runs each shard as one task; rerun the whole job",
    "workers": "the ray engine runs one task per shard; use --shards",
}


def cmd_mosaic_ray(args: argparse.Namespace, config: MosaicConfig, source: str) -> int:
    refused = [name for name in RAY_REFUSED if getattr(args, name)]
    if refused:
        raise ValueError(
            "--engine ray: "
            + "; ".join(
                f"--{n.replace('_', '-')} does not apply ({RAY_REFUSED[n]})" for n in refused
            )
        )
    if Path(args.output).suffix.lower() in OUTPUT_KINDS:
        raise ValueError(
            f"{args.output}: the ray engine writes a directory of shards; name a "
            "directory (no file extension)"
        )
    try:
        import ray  # noqa: F401

        from mosaic_it.executors.ray import resolve_inputs
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'mosaic-it[ray]'") from None
    inputs = resolve_inputs(source)
    local = "://" not in args.output
    outputs = [
        Output(args.output if local else None, "OUTPUT", "dir"),
        Output(args.rejects, "--rejects"),
        Output(args.stats, "--stats"),
        Output(config_path_for(args.output) if local else None, "OUTPUT.config.yaml"),
    ]
    local_inputs = {f"INPUT {i}": i for i in [source, *inputs] if "://" not in i}
    local_inputs.update({"--rules": args.rules, "--tokenizer": args.tokenizer})
    with guard(local_inputs, outputs):
        if local:
            _clear_ray_output(Path(args.output))
        return _mosaic_ray_locked(args, config, inputs)


RAY_OUTPUT_FILES = ("shard-*.jsonl", "shard-*.parquet", "summary.json", "rejects.jsonl")


def _clear_ray_output(path: Path) -> None:
    """Remove an earlier run's files from this tool's own output directory (the guard checked
    it is one), so that shards of two runs never mix."""
    for pattern in RAY_OUTPUT_FILES:
        for old in path.glob(pattern):
            old.unlink()


def _mosaic_ray_locked(args: argparse.Namespace, config: MosaicConfig, inputs: list[str]) -> int:
    import ray

    from mosaic_it.executors.ray import ShardJob, run_ray, start_ray

    job = ShardJob(
        config,
        str(args.output),
        shard_format=args.shard_format,
        output_format=args.output_format,
        input_format=args.input_format,
        on_error=args.on_error,
        keep_originals=args.keep_originals,
        keep_multiturn=args.keep_multiturn,
    )
    start_ray(args.ray_address, quiet=args.quiet)
    shards = args.shards
    if shards <= 0:
        shards = 2 * (
            int(ray.cluster_resources().get("CPU", 1)) if args.ray_address else usable_cpus()
        )
    summary, parts = run_ray(inputs, job, shards=shards, quiet=args.quiet)
    written = {
        k: sum(p["written"][k] for p in parts) for k in ("samples", "originals", "multi_turn")
    }
    _finish_run(
        args,
        config,
        summary,
        {
            "format": args.output_format,
            "type": "shards",
            "shards": shards,
            "shard_format": args.shard_format,
            "files": [p["file"] for p in parts],
            "rows": written,
        },
    )
    return 0


def _mosaic_parser(args: argparse.Namespace | None = None) -> argparse.ArgumentParser:
    parser = getattr(args, "parser", None) or build_parser()
    if parser.prog.endswith(" mosaic"):
        return parser
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return sub.choices["mosaic"]


def _mosaic_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]
) -> None:
    """Merge a --config recipe into the options, and check INPUT and OUTPUT are known."""
    args.parser = _mosaic_parser(argparse.Namespace(parser=parser))
    if args.config:
        apply_recipe(args.parser, args, argv[argv.index("mosaic") + 1 :], args.config)
    if not args.input or not args.output:
        raise ValueError("mosaic: give INPUT and OUTPUT, on the command line or in --config")


def cmd_rules(args: argparse.Namespace) -> int:
    path = default_rules_path()
    print(path if args.path else path.read_text(encoding="utf-8"), end="\n" if args.path else "")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "mosaic":
            _mosaic_options(parser, args, sys.argv[1:] if argv is None else argv)
        if getattr(args, "handler", None) is not None:
            return args.handler(args)
        if args.command == "mosaic":
            return cmd_mosaic(args)
        return cmd_rules(args)
    except (InputError, RulePackError, TokenizerError, ValueError) as exc:
        print(f"mosaic-it: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # the environment: disk full, read-only, no permission...
        print(f"mosaic-it: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RecursionError:
        print("mosaic-it: error: the input is nested too deeply to read", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WorkerDied as exc:
        print(f"mosaic-it: error: {exc}", file=sys.stderr)
        return EXIT_WORKER_DIED
    except RunInterrupted as exc:
        print(f"mosaic-it: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("mosaic-it: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
