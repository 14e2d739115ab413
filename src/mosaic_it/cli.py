"""The command line: ``mosaic-it mosaic INPUT OUTPUT [options]``."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from . import __version__
from .api import MosaicConfig, Mosaicker
from .io import InputError, InvalidRecord, read_records, write_json, write_records
from .rulepack import RulePackError, default_rules_path
from .runner import fingerprint, write_run
from .sizing import WRAP_MODES
from .strategies import STRATEGIES
from .templates import TEMPLATES
from .tokenizer import TokenizerError

EXAMPLE = "builtin:example"
EXIT_BAD_INPUT = 2


def example_path() -> Path:
    return Path(str(resources.files("mosaic_it") / "data" / "example.jsonl"))


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
    m.add_argument("input", help=f"Alpaca records, JSON list or JSONL ({EXAMPLE}: the bundled example)")
    m.add_argument("output", help="where to write the samples: .json (a list) or .jsonl")
    m.add_argument("--epochs", type=int, default=d.epochs,
                   help="times the records are reshuffled and grouped (default %(default)s)")
    m.add_argument("--wrap-mode", choices=list(WRAP_MODES), default=d.wrap_mode,
                   help="distribution of instructions per sample (default %(default)s)")
    m.add_argument("--max-instructions", type=int, default=d.max_instructions,
                   help="most instructions in one sample, M (default %(default)s)")
    m.add_argument("--max-tokens", type=int, default=d.max_tokens,
                   help="token budget of one rendered training sequence (default %(default)s)")
    m.add_argument("--template", choices=list(TEMPLATES), default=d.template,
                   help="sequence the budget counts: vicuna = FastChat Vicuna v1.1 with BOS/EOS; "
                   "none = instruction + response only (default %(default)s)")
    m.add_argument("--tokenizer", default=None,
                   help="tokenizer.json, a directory holding one, a SentencePiece .model, or a hub "
                   "name (online); default: the bundled Llama-family 32k tokenizer")
    m.add_argument("--strategies", type=_strategies, default=d.strategies,
                   help="+-joined strategies drawn with equal chance; every sample gets the format "
                   "layer (default format+permute+maskout)")
    m.add_argument("--rules", default=None,
                   help="a rule pack JSON replacing the bundled one (or extending it with "
                   '"extends": "default")')
    m.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    m.add_argument("--rejects", metavar="FILE", help="write records left out (too long, invalid) here")
    m.add_argument("--stats", metavar="FILE", help="write the run summary here as JSON")
    m.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                   help="a malformed record stops the run (raise) or is skipped and reported")
    m.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                   help="progress bar on stderr (auto: only on a terminal)")
    m.add_argument("--workers", type=int, default=0,
                   help="processes running epochs side by side (default 0: one per core, at most "
                   "one per epoch); the output is the same for any number")
    m.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this machine; ray: Ray Data on a local or remote cluster (extra "
                   "mosaic-it[ray]; INPUT: JSONL/Parquet file, directory or glob; OUTPUT: a directory)")
    m.add_argument("--shards", type=int, default=0,
                   help="ray engine: shards grouped independently (default: 2 per CPU of the cluster)")
    m.add_argument("--shard-format", choices=["jsonl", "parquet"], default="jsonl",
                   help="ray engine: file type of the output shards (default %(default)s)")
    m.add_argument("--ray-address", default=None,
                   help="ray engine: address of a running cluster (default: start a local one)")
    m.add_argument("--resume", action="store_true",
                   help="reuse the finished epochs of an interrupted run of the same command")
    m.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")

    r = sub.add_parser("rules", help="print the bundled rule pack (a starting point for --rules)")
    r.add_argument("--path", action="store_true", help="print its path instead of its content")
    return parser


def cmd_mosaic(args: argparse.Namespace) -> int:
    config = MosaicConfig(
        epochs=args.epochs,
        wrap_mode=args.wrap_mode,
        max_instructions=args.max_instructions,
        max_tokens=args.max_tokens,
        template=args.template,
        tokenizer=args.tokenizer,
        strategies=args.strategies,
        rules=args.rules,
        seed=args.seed,
    )
    source = example_path() if args.input == EXAMPLE else Path(args.input)
    if args.engine == "ray":
        return cmd_mosaic_ray(args, config, str(source))
    progress = sys.stderr.isatty() if args.progress == "auto" else args.progress == "on"
    workers = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    mosaicker = Mosaicker(config, progress=progress)
    invalid: list[InvalidRecord] = []
    records = read_records(source, on_error=args.on_error, invalid=invalid)
    prepared = mosaicker.prepare(records, invalid)
    prepared.summary.workers = min(workers, config.epochs)
    write_run(
        mosaicker,
        prepared,
        args.output,
        workers=workers,
        resume=args.resume,
        fingerprint_value=fingerprint(mosaicker, source, {"on_error": args.on_error}),
    )
    summary = mosaicker.summary
    if args.rejects:
        write_records(args.rejects, summary.rejected + summary.invalid)
    if args.stats:
        write_json(args.stats, {"config": config.to_dict(), "summary": summary.to_dict()})
    if not args.quiet:
        print(f"mosaic-it: wrote {summary.samples_written} samples to {args.output}", file=sys.stderr)
        print(summary.render(), file=sys.stderr)
    return 0


def cmd_mosaic_ray(args: argparse.Namespace, config: MosaicConfig, source: str) -> int:
    try:
        from .ray_engine import resolve_inputs, run_ray
        import ray  # noqa: F401
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'mosaic-it[ray]'") from None
    inputs = resolve_inputs(source)
    shards = args.shards
    if shards <= 0:
        shards = 2 * (os.cpu_count() or 1) if not args.ray_address else 0
    if shards <= 0:
        import ray

        ray.init(address=args.ray_address, include_dashboard=False, log_to_driver=False)
        shards = 2 * int(ray.cluster_resources().get("CPU", 1))
    summary = run_ray(inputs, args.output, config, shards=shards, output_format=args.shard_format,
                      on_error=args.on_error, address=args.ray_address)
    if args.stats:
        write_json(args.stats, {"config": config.to_dict(), "summary": summary})
    if not args.quiet:
        print(
            f"mosaic-it: ray engine, {shards} shards: {summary['samples_written']} samples from "
            f"{summary['records_mosaicked']} of {summary['records_read']} records "
            f"(mean {summary['mean_instructions_per_sample']:.2f} instructions/sample, "
            f"{len(summary['rejected'])} rejected, {len(summary['invalid'])} left out) in {args.output}",
            file=sys.stderr,
        )
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    path = default_rules_path()
    print(path if args.path else path.read_text(encoding="utf-8"), end="\n" if args.path else "")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "mosaic":
            return cmd_mosaic(args)
        return cmd_rules(args)
    except (InputError, RulePackError, TokenizerError, ValueError) as exc:
        print(f"mosaic-it: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("mosaic-it: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
