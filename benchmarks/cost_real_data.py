"""Training cost of real Alpaca data against its mosaic: the figures of README's "Training cost".

Mosaics the data (``mosaic-it mosaic --epochs 4``, default options) in a temporary directory,
then runs ``mosaic-it cost`` on the pair: 3 epochs of the original against 1 of the mosaic,
batch 128, micro-batch 4, max length 2048, and a time extrapolated from measured steps of the
tiny Llama on this machine (``--model`` for another). Prints the table and one JSON line with
every figure; ``--out FILE`` appends that line to FILE.

The data is never copied into the repository. ``--records N`` repeats it to N records (record i
gets the id ``r{i}``) to see Alpaca-sized step counts: the repeated records have the same length
distribution, so tokens scale linearly, and batch rounding shows as it would at that size.

    .venv/bin/python benchmarks/cost_real_data.py
    .venv/bin/python benchmarks/cost_real_data.py --records 52002 --no-time
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from mosaic_it import MosaicConfig, mosaic_file
from mosaic_it.apps.cost import render, run_cost
from mosaic_it.apps.cost_counting import CostOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests/
from tests.data_paths import ENGLISH_DEMO, real_data  # noqa: E402

DEFAULT_DATA = str(real_data(ENGLISH_DEMO))  # beside the repo, or $MOSAIC_IT_DATA_DIR


def expand(path: str, n: int | None, workdir: Path) -> Path:
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    if not n or n == len(records):
        return Path(path)
    out = workdir / f"alpaca_{n}.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(
                json.dumps({**records[i % len(records)], "id": f"r{i}"}, ensure_ascii=False) + "\n"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", default=DEFAULT_DATA, help=f"Alpaca JSON list (default {DEFAULT_DATA})"
    )
    p.add_argument("--records", type=int, default=None, help="repeat the data to N records")
    p.add_argument(
        "--mosaic-epochs", type=int, default=4, help="mosaic-it mosaic --epochs (default 4)"
    )
    p.add_argument("--model", default="builtin:tiny-llama", help="model whose steps are timed")
    p.add_argument("--micro-batch-size", type=int, default=4)
    p.add_argument("--measure-repeats", type=int, default=3)
    p.add_argument("--no-time", action="store_true", help="counts only")
    p.add_argument("--out", help="append the JSON line to this file")
    args = p.parse_args(argv)
    if not Path(args.data).is_file():
        print(
            f"cost_real_data: {args.data}: no such file (see benchmarks/README.md)", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="mosaic-cost-") as tmp:
        work = Path(tmp)
        original = expand(args.data, args.records, work)
        mosaic = work / "mosaic.jsonl"
        t0 = time.perf_counter()
        mosaic_file(original, mosaic, MosaicConfig(epochs=args.mosaic_epochs))
        mosaic_seconds = time.perf_counter() - t0
        opt = CostOptions(micro_batch_size=args.micro_batch_size)
        result = run_cost(
            str(original),
            str(mosaic),
            opt,
            model=None if args.no_time else args.model,
            repeats=args.measure_repeats,
        )
    result["original"]["path"] = args.data + (f" x{args.records} records" if args.records else "")
    result["mosaic"]["path"] = f"mosaic-it mosaic --epochs {args.mosaic_epochs} of it"
    print(render(result))
    line = {
        "benchmark": "cost_real_data",
        "data": args.data,
        "records": args.records,
        "mosaic_epochs": args.mosaic_epochs,
        "mosaic_seconds": round(mosaic_seconds, 2),
        "cpus": os.cpu_count(),
        **{k: result[k] for k in ("options", "reduction", "timing")},
        "original": result["original"],
        "mosaic": result["mosaic"],
    }
    print(json.dumps(line))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
