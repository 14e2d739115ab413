"""GRPO on mosaic prompts, and the rewards on held-out prompts before and after.

Splits the bundled example records (120) into training records (the first ``--train-records``)
and held-out ones (the rest); composes RL prompts from the training records
(``mosaic-it make-rl-prompts``, held-out instructions excluded) and an evaluation set from the
held-out ones (``mosaic-it make-eval``); answers the evaluation set greedily with the model
(``mosaic-it eval``), trains ``mosaic-it train --method grpo`` for ``--steps`` steps, answers
the evaluation set again with the trained model, and prints the mean pass and partial-credit
rewards (:mod:`mosaic_it.rewards`, in ``--reward-mode``) of both sets of answers, and the
training run's reward curve.

    python benchmarks/grpo_rewards.py --model builtin:tiny-llama --steps 8 --workdir /tmp/grpo
    python benchmarks/grpo_rewards.py --model SMOLLM2_DIR --steps 30 --workdir /tmp/grpo-smol

A ``.gguf`` model must first be saved as a plain model directory (a GGUF-loaded model cannot be
trained); ``benchmarks/eval_throughput.py`` writes one to ``WORKDIR/model``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mosaic_it.io.readers import example_path
from mosaic_it.rewards import MosaicReward


def cli(*args: str, log: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with log.open("w") as out:
        code = subprocess.call(
            [sys.executable, "-m", "mosaic_it.cli.main", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if code:
        raise SystemExit(f"failed ({code}): mosaic-it {' '.join(args)}\n{log.read_text()[-3000:]}")


def mean_rewards(eval_set: Path, responses: Path, mode: str) -> dict[str, float]:
    items = {d["id"]: d for d in map(json.loads, eval_set.read_text().splitlines())}
    answers = {d["id"]: d["response"] for d in map(json.loads, responses.read_text().splitlines())}
    ids = sorted(items)
    out = {}
    for kind in ("pass", "partial"):
        scores = MosaicReward(kind, mode=mode)(
            [answers.get(i, "") for i in ids], mosaic=[items[i]["mosaic"] for i in ids]
        )
        out[kind] = round(sum(scores) / len(scores), 4)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--train-records", type=int, default=90)
    p.add_argument("--rl-prompts", type=int, default=200)
    p.add_argument("--eval-items", type=int, default=30)
    p.add_argument("--max-instructions", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8, help="completions per step")
    p.add_argument("--max-completion-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--rewards", default="partial")
    p.add_argument("--reward-mode", default="loose")
    p.add_argument("--prompt-format", default="chat", help="as mosaic-it train --prompt-format")
    a = p.parse_args()

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = example_path().read_text(encoding="utf-8").splitlines()
    (work / "train.jsonl").write_text("\n".join(rows[: a.train_records]) + "\n")
    (work / "held_out.jsonl").write_text("\n".join(rows[a.train_records :]) + "\n")
    m = str(a.max_instructions)
    cli(
        "make-rl-prompts",
        str(work / "train.jsonl"),
        str(work / "rl.jsonl"),
        "--held-out",
        str(work / "held_out.jsonl"),
        "--n",
        str(a.rl_prompts),
        "--max-instructions",
        m,
        "-q",
        log=work / "make-rl-prompts.log",
    )
    cli(
        "make-eval",
        str(work / "held_out.jsonl"),
        str(work / "eval.jsonl"),
        "--n",
        str(a.eval_items),
        "--max-instructions",
        m,
        "-q",
        log=work / "make-eval.log",
    )
    gen = [
        "--eval-set",
        str(work / "eval.jsonl"),
        "--max-new-tokens",
        str(a.max_completion_length),
        "--prompt-format",
        a.prompt_format,
        "-q",
    ]
    run = work / "run"
    for name, model in (("before", a.model), ("after", str(run))):
        if name == "after" and not (run / "mosaic_it_train.json").is_file():
            t0 = time.perf_counter()
            cli(
                "train",
                str(work / "rl.jsonl"),
                "--method",
                "grpo",
                "--model",
                a.model,
                "--output-dir",
                str(run),
                "--prompt-format",
                a.prompt_format,
                "--max-steps",
                str(a.steps),
                "--num-generations",
                str(a.num_generations),
                "--batch-size",
                str(a.batch_size),
                "--micro-batch-size",
                str(a.batch_size),
                "--max-completion-length",
                str(a.max_completion_length),
                "--lr",
                str(a.lr),
                "--rewards",
                a.rewards,
                "--reward-mode",
                a.reward_mode,
                "--warmup-ratio",
                "0",
                "--lr-scheduler",
                "constant",
                "--logging-steps",
                "1",
                "--save-steps",
                str(a.steps),
                log=work / "train.log",
            )
            print(json.dumps({"train_seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        responses = work / f"{name}.responses.jsonl"
        if not responses.is_file():
            cli(
                "eval",
                "--model",
                model,
                *gen,
                "--responses",
                str(responses),
                log=work / f"eval-{name}.log",
            )
        print(
            json.dumps(
                {
                    "held_out": name,
                    "items": a.eval_items,
                    "mean_reward": mean_rewards(work / "eval.jsonl", responses, a.reward_mode),
                }
            ),
            flush=True,
        )
    saved = json.loads((run / "mosaic_it_train.json").read_text())
    print(json.dumps({"training_reward_curve": saved["result"]["rewards"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
