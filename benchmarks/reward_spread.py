"""How often a group of sampled answers gives GRPO something to learn from, per curriculum level.

GRPO's advantage is a completion's reward minus its group's mean: a group whose answers all
score alike teaches nothing. For the rows of ``mosaic-it make-rl-prompts --curriculum``, this
samples ``--samples`` answers to each of ``--prompts`` prompts per level (temperature
``--temperature``, the model's chat template) and prints, per level and reward (pass and
partial, loose mode), the share of groups whose rewards are not all equal, and the mean reward.

    python benchmarks/reward_spread.py --model MODEL_DIR --rows rl.jsonl --prompts 8 --samples 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mosaic_it.rewards import MosaicReward


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a transformers model directory")
    p.add_argument("--rows", required=True, help="make-rl-prompts --curriculum output")
    p.add_argument("--prompts", type=int, default=8, help="prompts per level")
    p.add_argument("--samples", type=int, default=4, help="answers per prompt (GRPO's group)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the figures here as JSON")
    args = p.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines()]
    levels = sorted({r.get("level", 0) for r in rows})
    rewards = {kind: MosaicReward(kind) for kind in ("pass", "partial")}
    report = {}
    for level in levels:
        chosen = [r for r in rows if r.get("level", 0) == level][: args.prompts]
        t0 = time.perf_counter()
        texts = [
            tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
            for r in chosen
        ]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=args.temperature,
                max_new_tokens=args.max_new_tokens,
                num_return_sequences=args.samples,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        answers = tokenizer.batch_decode(
            out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
        )
        specs = [r["mosaic"] for r in chosen for _ in range(args.samples)]
        row = {"prompts": len(chosen), "seconds": round(time.perf_counter() - t0, 1)}
        for kind, fn in rewards.items():
            scores = fn(answers, mosaic=specs)
            groups = [scores[i : i + args.samples] for i in range(0, len(scores), args.samples)]
            row[f"{kind}_spread"] = sum(len(set(g)) > 1 for g in groups) / len(groups)
            row[f"{kind}_mean"] = round(sum(scores) / len(scores), 3)
        report[f"level {level}"] = row
        print(json.dumps({f"level {level}": row}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
