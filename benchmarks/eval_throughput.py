"""Generation throughput of the backends of ``mosaic-it eval`` on the same prompts.

Runs ``mosaic-it eval`` as a separate process per case on one evaluation set (default: 60
prompts composed from the bundled example records) and one model, and prints the generated
tokens per second of each case as JSON lines and a table:

* ``transformers-before``: the transformers backend as it was at ``--before-ref`` (its source is
  taken with ``git archive`` from this repository);
* ``transformers``: the transformers backend now, at ``--batch-size`` and at each of
  ``--more-batch-sizes`` (0: batches sized by tokens, the default of ``mosaic-it eval``);
* ``openai``: the same model served by ``transformers serve`` on 127.0.0.1, asked with
  each of ``--concurrency`` (comma-separated) requests in flight (needs the serve dependency
  group: ``pip install --group serve``);
* ``openai-batching``: the same with ``transformers serve --continuous-batching``, which
  batches the requests in flight together;
* ``vllm``: vLLM's offline engine, where vLLM is installed (skipped otherwise).

Every case generates greedily from the same model directory with the model's chat template, so
the answers (and the number of tokens generated) should agree; the table says whether they do.
A ``.gguf`` model is de-quantized once into ``WORKDIR/model`` (a server needs a directory).

    python benchmarks/eval_throughput.py --model PATH/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --max-new-tokens 64 --workdir /tmp/eval-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tests/local_server.py: a test helper, not in the package
BEFORE_REF = "87ffe87"  # the transformers backend before the throughput work


def run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if code:
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")


def model_dir(spec: str, work: Path, env: dict[str, str]) -> Path:
    """A transformers model directory (a .gguf is de-quantized and saved once)."""
    if not spec.endswith(".gguf"):
        return Path(spec)
    target = work / "model"
    if (target / "config.json").is_file():
        return target
    code = (
        "import sys\n"
        "from mosaic_it.apps.models import resolve_model, load_model, load_tokenizer_for\n"
        "src = resolve_model(sys.argv[1])\n"
        "from transformers import AutoModelForCausalLM\n"
        "model = load_model(src)\n"
        "config = model.config\n"
        "if hasattr(config, 'quantization_config'):\n"
        "    del config.quantization_config  # de-quantized weights, saved as plain ones\n"
        "plain = AutoModelForCausalLM.from_config(config)\n"
        "plain.load_state_dict(model.state_dict())\n"
        "plain.save_pretrained(sys.argv[2])\n"
        "load_tokenizer_for(src).save_pretrained(sys.argv[2])\n"
    )
    run([sys.executable, "-c", code, spec, str(target)], env, work / "convert.log")
    return target


def source_at(ref: str, work: Path) -> Path:
    """This repository's src/ at ``ref``, extracted into the work directory."""
    target = work / f"src-{ref}"
    if not target.is_dir():
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def eval_case(
    name: str, args: list[str], src: Path, work: Path, env: dict[str, str], common: list[str]
) -> dict:
    out, responses = work / f"{name}.json", work / f"{name}.responses.jsonl"
    responses.unlink(missing_ok=True)
    t0 = time.perf_counter()
    run(
        [
            sys.executable,
            "-m",
            "mosaic_it.cli.main",
            "eval",
            *common,
            *args,
            "--out",
            str(out),
            "--responses",
            str(responses),
            "-q",
        ],
        {**env, "PYTHONPATH": str(src)},
        work / f"{name}.log",
    )
    wall = time.perf_counter() - t0
    result = json.loads(out.read_text())
    gen = result["run"]["generation"]
    seconds = result["run"]["seconds"]["generate"]
    tokens = gen.get("tokens_generated")
    answers = {d["id"]: d["response"] for d in map(json.loads, responses.read_text().splitlines())}
    return {
        "case": name,
        "answers": gen["answers"],
        "tokens": tokens,
        "threads": gen.get("threads"),
        "batch_size": gen.get("batch_size"),
        "generate_s": seconds,
        "wall_s": round(wall, 1),
        "tokens_per_s": round(tokens / seconds, 2) if tokens and seconds else None,
        "sample_accuracy": result["overall"]["sample_accuracy"],
        "_answers": answers,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model directory or .gguf file")
    p.add_argument(
        "--eval-set",
        help="evaluation set (default: --n items made from the bundled example records)",
    )
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--max-instructions", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--more-batch-sizes",
        default="0",
        help="comma-separated, 0 = sized by --batch-tokens (the default); '' for none",
    )
    p.add_argument("--concurrency", default="8", help="comma-separated: one run each")
    p.add_argument("--before-ref", default=BEFORE_REF)
    p.add_argument(
        "--cases",
        default="before,transformers,openai,vllm",
        help="run in this order; the table compares every case with transformers-before "
        "(or the first)",
    )
    p.add_argument("--workdir", help="kept when given (default: a temp dir, removed)")
    p.add_argument("--out", help="append the JSON lines here")
    a = p.parse_args()

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="eval-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}
    now = ROOT / "src"
    cases = a.cases.split(",")
    try:
        model = model_dir(a.model, work, env)
        eval_set = Path(a.eval_set) if a.eval_set else work / "eval.jsonl"
        if not a.eval_set:
            run(
                [
                    sys.executable,
                    "-m",
                    "mosaic_it.cli.main",
                    "make-eval",
                    "builtin:example",
                    str(eval_set),
                    "--n",
                    str(a.n),
                    "--max-instructions",
                    str(a.max_instructions),
                    "-q",
                ],
                env,
                work / "make-eval.log",
            )
        common = ["--eval-set", str(eval_set), "--max-new-tokens", str(a.max_new_tokens)]
        local = ["--model", str(model), "--prompt-format", "chat"]
        rows = []

        def record(row: dict) -> None:
            rows.append(row)
            shown = {k: v for k, v in row.items() if not k.startswith("_")}
            print(json.dumps(shown), flush=True)
            if a.out:
                with open(a.out, "a", encoding="utf-8") as f:
                    f.write(
                        json.dumps(
                            {
                                **shown,
                                "model": a.model,
                                "n": a.n,
                                "max_new_tokens": a.max_new_tokens,
                            }
                        )
                        + "\n"
                    )

        for case in cases:
            if case == "before":
                record(
                    eval_case(
                        "transformers-before",
                        [*local, "--batch-size", str(a.batch_size)],
                        source_at(a.before_ref, work),
                        work,
                        env,
                        common,
                    )
                )
            elif case == "transformers":
                sizes = [a.batch_size] + [int(x) for x in a.more_batch_sizes.split(",") if x]
                for size in sizes:
                    record(
                        eval_case(
                            f"transformers-batch{size or '-by-tokens'}",
                            [*local, "--batch-size", str(size)],
                            now,
                            work,
                            env,
                            common,
                        )
                    )
            elif case in ("openai", "openai-batching"):
                from mosaic_it.apps.generation import idle_cores
                from tests.local_server import LocalServer

                batching = case == "openai-batching"
                # the server's torch threads as the transformers backend now chooses them
                with LocalServer(
                    model,
                    work / f"serve-{case}.log",
                    threads=idle_cores(),
                    continuous_batching=batching,
                ) as server:
                    for concurrency in a.concurrency.split(","):
                        name = "continuous-batching" if batching else "transformers-serve"
                        record(
                            eval_case(
                                f"openai-{name}-c{concurrency}",
                                [
                                    "--backend",
                                    "openai",
                                    "--base-url",
                                    server.base_url,
                                    "--model",
                                    str(model),
                                    "--concurrency",
                                    concurrency,
                                ],
                                now,
                                work,
                                env,
                                common,
                            )
                        )
            elif case == "vllm":
                try:
                    import vllm  # noqa: F401
                except ImportError:
                    print(json.dumps({"case": "vllm", "skipped": "vllm is not installed"}))
                    continue
                record(
                    eval_case(
                        "vllm", ["--backend", "vllm", "--model", str(model)], now, work, env, common
                    )
                )
            else:
                raise SystemExit(f"--cases: unknown case {case!r}")
        if rows:
            # the baseline: the backend as it was, where it ran
            first = next((r for r in rows if r["case"] == "transformers-before"), rows[0])
            print(
                f"\n{'case':28} {'answers':>7} {'tokens':>7} {'gen s':>8} {'tok/s':>8} "
                f"{'x base':>7}  same answers as {first['case']}"
            )
            for r in rows:
                ratio = (
                    r["tokens_per_s"] / first["tokens_per_s"]
                    if r["tokens_per_s"] and first["tokens_per_s"]
                    else None
                )
                same = sum(r["_answers"].get(k) == v for k, v in first["_answers"].items())
                print(
                    f"{r['case']:28} {r['answers']:>7} {r['tokens'] or '-':>7} "
                    f"{r['generate_s']:>8} {r['tokens_per_s'] or '-':>8} "
                    f"{(f'{ratio:.2f}' if ratio else '-'):>7}  {same}/{len(first['_answers'])}"
                )
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
