#!/usr/bin/env python3
"""Run a command and print, every half second, the PSS of each process of its tree and their sum.

    python benchmarks/memory_trace.py python -m mosaic_it.cli mosaic big.jsonl out.jsonl -q

Shows which phase and which process (the parent, each forked worker) holds the memory that
``bench_mosaic.py``'s ``peak_pss_tree_mb`` sums; the last line is the peak of the sum (MB).
"""

import subprocess
import sys
import time

from bench_mosaic import _pss_kb, _tree


def main(cmd: list[str]) -> int:
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    start, peak = time.time(), 0
    while child.poll() is None:
        sizes = [_pss_kb(pid) // 1024 for pid in _tree(child.pid)]
        peak = max(peak, sum(sizes))
        print(
            f"{time.time() - start:7.1f} s  tree {sum(sizes):5d} MB  " + " ".join(map(str, sizes)),
            flush=True,
        )
        time.sleep(0.5)
    print(f"peak {peak} MB, exit status {child.returncode}")
    return child.returncode


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1:]))
