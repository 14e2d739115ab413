"""Are the meta-instructions true, unambiguous and safe? Counts by the independent checker
(tests/independent_checker.py) over real data, several seeds and wrap modes.

    python benchmarks/meta_truth.py --data alpaca_en_demo.json alpaca_zh_demo.json \
        --seeds 1 2 3 --wrap-modes uniform fix_max exp

Datasets: Alpaca JSON files, LLaMA-Factory messages files (``.jsonl``, string contents or
``{"type": "text", "value": ...}`` parts), ``fastchat:identity`` (FastChat's ShareGPT identity
conversations, from the installed fschat package) and ``tests/data/multilingual.json``. It prints
one row per dataset: samples, and samples with each finding; with ``--json`` also the counts as
JSON.
Runs with whatever ``mosaic_it`` is first on the path, so the same script measures any version.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.independent_checker import (
    check_sample,
    load_phrases,
    sources_from_alpaca,
    sources_from_messages,
    sources_from_sharegpt,
)

FINDINGS = (
    "false",
    "near_tie",
    "input_unsaid",
    "unsplittable",
    "label_collision",
    "tag_collision",
    "control_string",
    "identity",
    "reading_flip",
    "meta_like",
    "order_nested",
    "number",
    "meta_glued",
    "markup_tag",
)
WORD_RULES = (
    "permute.LENGTH_WORD",
    "permute.REVERSE_LENGTH_WORD",
    "maskout.WORD_LONG",
    "maskout.WORD_SHORT",
)


def load(name: str) -> tuple[list[dict], dict, str]:
    """Rows (in a format mosaic-it reads), the checker's sources and a file for mosaic-it."""
    if name == "fastchat:identity":
        from fastchat.data.hardcoded_questions import identity_questions

        rows = identity_questions()
        return rows, sources_from_sharegpt(rows), "sharegpt"
    if name.endswith(".jsonl"):
        rows = [json.loads(line) for line in Path(name).read_text(encoding="utf-8").splitlines()]
        return rows, sources_from_messages(rows), "messages"
    rows = json.loads(Path(name).read_text(encoding="utf-8"))
    return rows, sources_from_alpaca(rows), "alpaca"


def run(rows: list[dict], fmt: str, options: dict) -> tuple[list[dict], Counter]:
    """The samples of one run, and how often the rule drawn first was replaced, by reason
    (versions without that count give an empty one)."""
    from mosaic_it import MosaicConfig, Mosaicker, read_records

    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "messages":
            path = Path(tmp) / "in.jsonl"
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            path = Path(tmp) / "in.json"
            text = json.dumps(rows, ensure_ascii=False)
        path.write_text(text, encoding="utf-8")
        records = list(read_records(str(path)))
    m = Mosaicker(MosaicConfig(**options))
    samples = [s.to_record() for s in m.run(records)]
    return samples, Counter(getattr(m.summary, "rules_replaced", {}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--wrap-modes", nargs="+", default=["uniform", "fix_max", "exp"])
    ap.add_argument("--strategies", default="format+permute+maskout")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--tokenizer", help="a tokenizer directory (default: the bundled one)")
    ap.add_argument("--json", help="write the counts here")
    ap.add_argument(
        "--margins",
        nargs=3,
        type=float,
        metavar=("WORDS", "CHARACTERS", "RELATIVE"),
        help="run with these rule-pack margins instead of the bundled ones",
    )
    ap.add_argument(
        "--templates",
        nargs="*",
        default=[],
        help="also count, per template, samples whose joined instruction + response "
        "reaches the budget (the reference's test: strictly below it)",
    )
    args = ap.parse_args()
    rules_json = Path(str(resources.files("mosaic_it") / "data" / "rules.json"))
    phrases = load_phrases(rules_json)
    extra: dict = {}
    if args.margins:
        words, chars, relative = args.margins
        pack = Path(tempfile.mkdtemp()) / "margins.json"
        pack.write_text(
            json.dumps(
                {
                    "extends": "default",
                    "name": "margins",
                    "margins": {"words": words, "characters": chars, "relative": relative},
                }
            )
        )
        extra["rules"] = str(pack)
    out = {}
    print(
        f"{'dataset':24} {'samples':>7} {'word-rule':>9} {'(bad)':>5} "
        + " ".join(f"{f:>15}" for f in FINDINGS)
        + f" {'permute':>7} {'both sides':>10}"
    )
    for name in args.data:
        rows, sources, fmt = load(name)
        total: Counter = Counter()
        rules: Counter = Counter()
        samples = 0
        both = 0
        replaced: Counter = Counter()
        word_bad = 0
        for seed in args.seeds:
            for mode in args.wrap_modes:
                options = {
                    "seed": seed,
                    "wrap_mode": mode,
                    "epochs": args.epochs,
                    "strategies": tuple(args.strategies.split("+")),
                    **({"tokenizer": args.tokenizer} if args.tokenizer else {}),
                    **extra,
                }
                made, why = run(rows, fmt, options)
                replaced.update(why)
                for sample in made:
                    v = check_sample(sample, sources, phrases)
                    total.update(v.findings)
                    rules[v.rule] += 1
                    if v.rule in WORD_RULES and {"false", "near_tie"} & set(v.findings):
                        word_bad += 1
                samples += len(made)
                both += sum(1 for s in made if s["mosaic"].get("meta_position") == "both")
        word = sum(rules[r] for r in WORD_RULES)
        permute = sum(v for r, v in rules.items() if r.startswith("permute."))
        label = Path(name).name
        print(
            f"{label:24} {samples:7} {word:9} {word_bad:5} "
            + " ".join(f"{total[f]:15}" for f in FINDINGS)
            + f" {permute:7} {both:10}"
        )
        out[label] = {
            "samples": samples,
            "word_rule_samples": word,
            "word_rule_bad": word_bad,
            "permute": permute,
            "both_sides": both,
            "findings": {f: total[f] for f in FINDINGS},
            "rules": dict(sorted(rules.items())),
            "rules_replaced": dict(sorted(replaced.items())),
        }
    print("\nrule shares (of the samples of each strategy) and draws replaced, by reason")
    for label, d in out.items():
        by_strategy = Counter()
        for rule, n in d["rules"].items():
            by_strategy[rule.split(".")[0]] += n
        shares = " ".join(
            f"{r}:{n / by_strategy[r.split('.')[0]]:.1%}"
            for r, n in d["rules"].items()
            if r != "format"
        )
        reasons = Counter()
        for key, n in d["rules_replaced"].items():
            reasons[key.split(": ")[1]] += n
        print(
            f"{label}: strategies {dict(by_strategy)}\n  {shares}\n  replaced "
            f"{sum(reasons.values())} of {d['samples']} samples: {dict(reasons)}"
        )
    if args.templates:
        from mosaic_it import load_tokenizer

        tokenizer = load_tokenizer()
        print("\nsamples whose joined instruction + response reaches the budget (2048)")
        for name in args.data:
            rows, _, fmt = load(name)
            for template in args.templates:
                made, _ = run(rows, fmt, {"seed": 1, "epochs": args.epochs, "template": template})
                over = sum(tokenizer.count(s["instruction"] + s["output"]) >= 2048 for s in made)
                print(f"{Path(name).name}: --template {template}: {over} of {len(made)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
