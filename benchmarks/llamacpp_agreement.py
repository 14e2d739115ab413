"""Does ``mosaic-it eval --backend llamacpp`` hold up? Its greedy answers against the
transformers backend's, on the same prompts, and what each costs.

Takes the IFEval prompts and the transformers answers of one arm of a published replication
(``benchmarks/results/replicate-base``: ``stages/data-eval/ifeval.jsonl`` and
``stages/generate/ARM/ifeval/responses.jsonl``, made by ``benchmarks/replicate.py``), answers
the first ``--limit`` prompts again with llama.cpp in the same Vicuna v1.1 prompt, with the same
tokenizer, greedy, at the same cap, and reports:

* agreement: answers identical, and identical over their first 32 tokens (Wilson intervals);
  the mean share of the shorter answer's tokens that both begin with;
* the IFEval primary metric (instruction-level strict, pooled) of both on these prompts, and
  llama.cpp minus transformers with a paired bootstrap interval; the share of answers at the cap;
* speed: new tokens per second of llama.cpp here (one prompt at a time) beside the transformers
  stage's own figure (batched, from its stage.json), both with their load average.

Arm 0 runs the model's own Q4_K_M file, which transformers de-quantized to fp32 (llama.cpp
computes with the quantized weights); a trained arm is converted by llama.cpp's own converter
(``--checkpoint DIR --converter convert_hf_to_gguf.py``, fp32 unless ``--outtype``), the file
made once in the cache.

    python benchmarks/llamacpp_agreement.py --arm arm0 --limit 60 --threads 1
    python benchmarks/llamacpp_agreement.py --arm arm4-seed42 --limit 60 --threads 1 \\
        --checkpoint ~/.cache/mosaic-it/replicate/base/train/arm4-seed42/model \\
        --converter "$LLAMA_CPP_CONVERTER"

(the converter is in llama-cpp-python's sdist: ``pip download --no-deps --no-binary :all:
llama-cpp-python==0.3.36``, unpack it and set ``LLAMA_CPP_CONVERTER`` to its
``vendor/llama.cpp/convert_hf_to_gguf.py``, as .ci/run does). Results go to
``benchmarks/results/llamacpp/ARM-OUTTYPE.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import replicate as R  # noqa: E402  (the replication's own scoring and statistics)

PREFIX = 32  # tokens: answers that begin alike over this many tokens


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def converted(checkpoint: Path, converter: Path, outtype: str) -> Path:
    """The checkpoint as a GGUF file, written once by llama.cpp's converter into the cache."""
    from mosaic_it.apps.gguf_model import file_sha256
    from mosaic_it.cache import cache_root

    digest = file_sha256(checkpoint / "model.safetensors")[:16]
    target = cache_root() / "llamacpp" / f"{checkpoint.parent.name}-{digest}-{outtype}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    env = {**os.environ, "PYTHONPATH": str(converter.parent / "gguf-py")}
    cmd = [sys.executable, str(converter), str(checkpoint), "--outtype", outtype]
    subprocess.run([*cmd, "--outfile", str(partial)], check=True, env=env, capture_output=True)
    partial.rename(target)
    return target


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(HERE / "results" / "replicate-base"))
    p.add_argument("--arm", default="arm0", help="the arm whose transformers answers to compare")
    p.add_argument("--gguf", help="the GGUF file to run (default: arm0: the profile's model)")
    p.add_argument("--checkpoint", help="a trained arm's model directory, converted to GGUF")
    p.add_argument(
        "--converter",
        default=os.environ.get("LLAMA_CPP_CONVERTER"),
        help="llama.cpp's convert_hf_to_gguf.py, with --checkpoint (default $LLAMA_CPP_CONVERTER)",
    )
    p.add_argument("--outtype", default="f32", choices=("f32", "f16", "bf16", "q8_0"))
    p.add_argument("--limit", type=int, default=60, help="the first N IFEval prompts")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="default benchmarks/results/llamacpp/ARM-OUTTYPE.json")
    args = p.parse_args(argv)

    from mosaic_it.apps.generation import GenerationOptions, Prompt
    from mosaic_it.apps.llamacpp import LlamaCppBackend

    results = Path(args.results)
    stages = results / "stages"
    rows = _rows(stages / "data-eval" / "ifeval.jsonl")[: args.limit]
    gen_dir = stages / "generate" / args.arm / "ifeval"
    theirs = {str(r["id"]): r for r in _rows(gen_dir / "responses.jsonl")}
    their_stage = json.loads((gen_dir / "stage.json").read_text())
    cap = their_stage["max_new_tokens"]
    profile = R.PROFILES[json.loads((results / "results.json").read_text())["profile"]["name"]]

    if args.checkpoint:
        if not args.converter:
            p.error("--checkpoint needs --converter (llama.cpp's convert_hf_to_gguf.py)")
        gguf = converted(Path(args.checkpoint).expanduser(), Path(args.converter), args.outtype)
        tokenizer = str(Path(args.checkpoint).expanduser())  # the tokenizer the arm trained with
        outtype = args.outtype
    else:
        gguf = Path(args.gguf) if args.gguf else R.gemma3_file()
        tokenizer, outtype = None, "file"
    backend = LlamaCppBackend(str(gguf), tokenizer, profile.prompt_format)
    opt = GenerationOptions(max_new_tokens=cap, threads=args.threads)
    prompts = [Prompt(str(r["key"]), r["prompt"], "") for r in rows]
    mine: dict[str, str] = {}
    ids: dict[str, list[int]] = {}
    llm = backend._load(
        max(len(backend.fmt.generation_ids(backend.tokenizer, q.instruction)) for q in prompts)
        + cap,
        args.threads,
        0,
    )
    stop = backend.stop_ids(llm)
    t0 = time.perf_counter()
    loads = []
    for q in prompts:
        prompt_ids = backend.fmt.generation_ids(backend.tokenizer, q.instruction, q.system)
        ids[q.id] = backend.continue_ids(llm, prompt_ids, opt, stop)
        mine[q.id] = backend.tokenizer.decode(ids[q.id], skip_special_tokens=True).strip()
        loads.append(os.getloadavg()[0])
        print(f"{len(mine)}/{len(prompts)}", end="\r", file=sys.stderr)
    seconds = time.perf_counter() - t0
    generated = sum(len(v) for v in ids.values())

    tok = backend.tokenizer
    same = sum(1 for q in prompts if mine[q.id] == theirs[q.id]["response"])
    begin = 0
    prefix_share = []
    for q in prompts:
        a = tok(theirs[q.id]["response"], add_special_tokens=False).input_ids
        b = tok(mine[q.id], add_special_tokens=False).input_ids
        n = common_prefix(a, b)
        begin += n >= min(PREFIX, len(a), len(b))
        prefix_share.append(n / max(1, min(len(a), len(b))))
    score_t = R.score_ifeval(rows, {k: v["response"] for k, v in theirs.items()})
    score_l = R.score_ifeval(rows, mine)
    pair = R.paired_pooled(
        {k: (v["strict"], v["instructions"]) for k, v in score_t["per_item"].items()},
        {k: (v["strict"], v["instructions"]) for k, v in score_l["per_item"].items()},
    )
    n = len(prompts)
    out = {
        "arm": args.arm,
        "gguf": gguf.name,
        "outtype": outtype,
        "prompts": n,
        "cap": cap,
        "threads": args.threads,
        "identical": R.share(same, n),
        f"same_first_{PREFIX}_tokens": R.share(begin, n),
        "mean_common_prefix_share": round(sum(prefix_share) / n, 4),
        "ifeval_instruction_strict": {
            "transformers": score_t["table"]["instruction_strict"],
            "llamacpp": score_l["table"]["instruction_strict"],
            "llamacpp_minus_transformers": pair,
        },
        "hit_cap": {
            "transformers": R.share(sum(theirs[q.id]["new_tokens"] >= cap for q in prompts), n),
            "llamacpp": R.share(sum(len(ids[q.id]) >= cap for q in prompts), n),
        },
        "speed": {
            "llamacpp_tokens_per_second": round(generated / seconds, 2),
            "llamacpp_tokens": generated,
            "llamacpp_seconds": round(seconds, 1),
            "llamacpp_load_average_mean": round(sum(loads) / len(loads), 2),
            "transformers_tokens_per_second": round(
                their_stage["tokens_generated"] / their_stage["seconds"], 2
            ),
            "transformers_batch": their_stage["key"]["batch_size"],
            "transformers_threads": their_stage.get("threads"),
            "transformers_load_average": their_stage.get("load_average"),
        },
        "describe": backend.describe(),
        "command": "python benchmarks/llamacpp_agreement.py "
        + " ".join(
            "$LLAMA_CPP_CONVERTER" if a == args.converter else R.scrub_paths(a)
            for a in (argv if argv is not None else sys.argv[1:])
        ),
    }
    target = Path(args.out or HERE / "results" / "llamacpp" / f"{args.arm}-{outtype}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: out[k] for k in ("identical", "ifeval_instruction_strict", "speed")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
