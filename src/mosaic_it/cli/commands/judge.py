"""``mosaic-it judge PROMPTS ANSWERS_1 [ANSWERS_2] --model JUDGE --base-url URL``: the paper's
pairwise LLM-judge comparison of two answer files, or of one against the set's references."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mosaic_it.apps.judge import JudgeOptions, compare_files, default_cache
from mosaic_it.apps.judge_prompt import JudgePrompt
from mosaic_it.apps.prompt_sets import BUILTIN_SETS
from mosaic_it.cli.commands.eval import _declare_served
from mosaic_it.cli.registry import Arguments, Command
from mosaic_it.cli.served import progress, served_options
from mosaic_it.errors import OptionError
from mosaic_it.io.jsonfiles import write_json
from mosaic_it.io.outputs import Output, guard

SETS = ", ".join(f"builtin:{n}" for n in BUILTIN_SETS)


def declare(a: Arguments) -> None:
    d = JudgeOptions(cache=None)
    a.add("prompts", metavar="PROMPTS", help=f"the prompt set: {SETS}, or a JSON/JSONL file")
    a.add("answers_1", metavar="ANSWERS_1", help="answers (JSONL of id and response)")
    a.add(
        "answers_2",
        metavar="ANSWERS_2",
        nargs="?",
        help="the other model's answers; left out: ANSWERS_1 against the prompt set's "
        "reference answers (AlpacaEval's win rate)",
    )
    a.add("--model", required=True, help="the judge: the served model's name")
    a.add("--judge-prompt", metavar="FILE", help="judge prompt file (default: the built-in one)")
    a.add(
        "--judge-max-tokens",
        type=int,
        default=d.max_new_tokens,
        help="longest reply of the judge (default %(default)s)",
    )
    a.add(
        "--verdict-retries",
        type=int,
        default=d.verdict_retries,
        help="further tries of a reply whose verdict cannot be read, sampled; then it is "
        "counted as unreadable (default %(default)s)",
    )
    a.add(
        "--retry-temperature",
        type=float,
        default=d.retry_temperature,
        help="temperature of those tries (default %(default)s)",
    )
    a.add("--seed", type=int, default=d.seed, help="seed of the retries and the bootstrap")
    a.add(
        "--resamples",
        type=int,
        default=d.resamples,
        help="bootstrap resamples of the 95%% intervals (default %(default)s)",
    )
    a.add(
        "--cache",
        metavar="FILE",
        help=f"judge-call cache, JSONL (default {default_cache()})",
    )
    a.add("--no-cache", action="store_true", help="ask the judge every time")
    a.add("--judgments", metavar="FILE", help="write every verdict and reply here (JSONL)")
    a.add(
        "--resume",
        action="store_true",
        help="keep the judgments already in --judgments and ask the rest",
    )
    a.add("--out", metavar="FILE", help="write the results as JSON")
    _declare_served(a.group("the judge's server"))


def run(args: argparse.Namespace) -> int:
    if args.resume and not args.judgments:
        raise OptionError("--resume needs --judgments FILE (the judgments to keep)")
    served = served_options(args, args.model)  # before any file is read
    if args.no_cache and args.cache:
        raise OptionError("--cache and --no-cache: choose one")
    inputs = {"ANSWERS_1": args.answers_1, "ANSWERS_2": args.answers_2}
    if not args.prompts.startswith("builtin:"):
        inputs["PROMPTS"] = args.prompts
    cache = None if args.no_cache else Path(args.cache) if args.cache else default_cache()
    with guard(
        inputs,
        [Output(args.out, "--out"), Output(args.judgments, "--judgments")],
    ):
        options = JudgeOptions(
            prompt=JudgePrompt.load(args.judge_prompt),
            max_new_tokens=args.judge_max_tokens,
            verdict_retries=args.verdict_retries,
            retry_temperature=args.retry_temperature,
            seed=args.seed,
            cache=cache,
            judgments=Path(args.judgments) if args.judgments else None,
            resume=args.resume,
            resamples=args.resamples,
        )
        log = progress(args)

        results = compare_files(args.prompts, args.answers_1, args.answers_2, served, options, log)
        print(render(results))
        if args.out:
            write_json(args.out, results)
    return 0


def _ci(cell: dict[str, Any], digits: int = 3) -> str:
    if cell["value"] is None:
        return "-"
    ci = cell["ci95"]
    return f"{cell['value']:.{digits}f}" + (
        f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""
    )


def render(results: dict[str, Any]) -> str:
    """The table: per test set, combined win/tie/lose, the winning score, the win rate, the
    position consistency, the mean answer lengths; then each order's tallies."""
    a = results["answers"]
    lines = [
        f"answers 1: {a['answers_1']}",
        f"answers 2: {a['answers_2']}",
        f"judge: {results['judge']['model']} ({results['judge']['prompt']}); "
        f"{results['calls']['judgments']} judgments, {results['calls']['cached']} of "
        f"{results['calls']['distinct']} distinct calls from the cache, "
        f"{results['calls']['requests']} requests",
        "",
        "| test set | n | win | tie | lose | unreadable | winning score [95% CI] | "
        "win rate [95% CI] | consistent | chars 1 | chars 2 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for name, r in results["results"].items():
        c = r["combined"]
        pc = r["position_consistency"]
        consistent = "-" if pc["value"] is None else f"{pc['value']:.1%}"
        lines.append(
            f"| {name} | {c['n']} | {c['win']} | {c['tie']} | {c['lose']} | {c['unreadable']} | "
            f"{_ci(r['winning_score'])} | {_ci(r['win_rate'])} | "
            f"{consistent} | "
            f"{r['mean_chars']['answers_1']} | {r['mean_chars']['answers_2']} |"
        )
    every = results["results"]["all"]["orders"]
    lines.append("")
    for order, t in every.items():
        lines.append(
            f"{order.replace('_', ' ')}: win {t['win']}, tie {t['tie']}, lose {t['lose']}, "
            f"unreadable {t['unreadable']}"
        )
    return "\n".join(lines)


COMMAND = Command(
    "judge",
    "compare two models' answers with an LLM judge, each prompt in both orders",
    declare,
    run,
    description="Ask a judge model behind an OpenAI-compatible server which of two answers is "
    "better, for every prompt of a prompt set, once with each answer shown first (the "
    "Mosaic-IT paper's protocol), and report win/tie/lose per order and combined, the winning "
    "score, the position consistency and bootstrap intervals, per test set. With one answer "
    "file: against the prompt set's reference answers (AlpacaEval's win rate), with the "
    "answers' lengths beside it. Judge calls are cached: a re-run asks nothing again.",
)
