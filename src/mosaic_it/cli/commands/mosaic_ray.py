"""``mosaic-it mosaic --engine ray``: the mosaic command on Ray Data (a local or remote cluster).

The options are those of :mod:`mosaic_it.cli.commands.mosaic`; the few that cannot apply to
shards are refused before any work, naming them (:data:`RAY_REFUSED`). The shards are written
by :mod:`mosaic_it.executors.ray`; the side files and the account of the run by the output
assembly every executor shares (:func:`mosaic_it.io.assemble.finish_run`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mosaic_it.engine.mosaicker import MosaicConfig
from mosaic_it.engine.parallel import usable_cpus
from mosaic_it.errors import EnvironmentFault, OptionError
from mosaic_it.io.assemble import RunOutputs, finish_run
from mosaic_it.io.files import OUTPUT_KINDS, config_path_for
from mosaic_it.io.outputs import Output, guard
from mosaic_it.limits import MAX_SHARDS, bound

# options of `mosaic` the ray engine cannot honour per shard, and why
RAY_REFUSED = {
    "split": "the ray engine reads JSONL or Parquet files, not datasets splits",
    "dataset_info": "LLaMA-Factory would read summary.json and rejects.jsonl beside the shards",
    "resume": "the ray engine runs each shard as one task; rerun the whole job",
    "workers": "the ray engine runs one task per shard; use --shards",
}
RAY_OUTPUT_FILES = ("shard-*.jsonl", "shard-*.parquet", "summary.json", "rejects.jsonl")


def run(args: argparse.Namespace, config: MosaicConfig, source: str, files: RunOutputs) -> int:
    refused = [name for name in RAY_REFUSED if getattr(args, name)]
    if refused:
        raise OptionError(
            "--engine ray: "
            + "; ".join(
                f"--{n.replace('_', '-')} does not apply ({RAY_REFUSED[n]})" for n in refused
            )
        )
    bound(
        "--shards",
        args.shards,
        at_least=0,
        at_most=MAX_SHARDS,
        whole=True,
        why="0: two per CPU; each shard is a Ray task and a file of its own",
    )
    if Path(args.output).suffix.lower() in OUTPUT_KINDS:
        raise OptionError(
            f"{args.output}: the ray engine writes a directory of shards; name a "
            "directory (no file extension)"
        )
    try:
        import ray  # noqa: F401

        from mosaic_it.executors.ray import resolve_inputs
    except ImportError:
        raise EnvironmentFault("--engine ray needs Ray: pip install 'mosaic-it[ray]'") from None
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
        return _mosaic_ray_locked(args, config, inputs, files)


def _clear_ray_output(path: Path) -> None:
    """Remove an earlier run's files from this tool's own output directory (the guard checked
    it is one), so that shards of two runs never mix."""
    for pattern in RAY_OUTPUT_FILES:
        for old in path.glob(pattern):
            old.unlink()


def _mosaic_ray_locked(
    args: argparse.Namespace, config: MosaicConfig, inputs: list[str], files: RunOutputs
) -> int:
    import ray

    from mosaic_it.executors.ray import ShardJob, run_ray, start_ray, write_side_files

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
    output = {
        "format": args.output_format,
        "type": "shards",
        "shards": shards,
        "shard_format": args.shard_format,
        "files": [p["file"] for p in parts],
        "rows": written,
    }
    report = finish_run(
        files,
        config,
        summary,
        output,
        args.effective_config,
        place_config=lambda stats: write_side_files(
            args.output, stats, summary.rejected + summary.invalid, args.effective_config
        ),
    )
    if not args.quiet:
        print(report, file=sys.stderr)
    return 0
