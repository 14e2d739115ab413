"""Where an IFEval difference between two arms of a replication comes from: the instructions
followed (strict) by instruction type, for every arm, from the committed answers.

    python benchmarks/ifeval_by_instruction.py --results benchmarks/results/replicate-base

Reads ``stages/data-eval/ifeval.jsonl`` and ``stages/generate/ARM/ifeval/responses.jsonl`` of the
results folder, scores every answer with the replication's own checker (``replicate.py``'s
``ifeval_checker``: if-verifiable, the same as the table) and writes ``ifeval_by_instruction.md``
beside them: per instruction type (``detectable_format`` and ``keywords`` split into their
instructions), how many of the instructions given each arm followed. Descriptive: the types are
not a sampling design, so no intervals; the table's pooled difference is their sum.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import replicate as R  # noqa: E402

SPLIT = ("detectable_format", "keywords")


def kind(instruction: str) -> str:
    return instruction if instruction.startswith(SPLIT) else instruction.split(":")[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(HERE / "results" / "replicate-base"))
    args = p.parse_args(argv)
    results = Path(args.results)
    stages = results / "stages"
    rows = [json.loads(line) for line in (stages / "data-eval" / "ifeval.jsonl").open()]
    arms = sorted(d.name for d in (stages / "generate").iterdir() if (d / "ifeval").is_dir())
    check, _ = R.ifeval_checker()
    given: Counter[str] = Counter()
    followed: dict[str, Counter[str]] = {a: Counter() for a in arms}
    for arm in arms:
        path = stages / "generate" / arm / "ifeval" / "responses.jsonl"
        answers = {str(r["id"]): r["response"] for r in map(json.loads, path.open())}
        for row in rows:
            checked, _ = check(row, answers.get(str(row["key"]), ""))
            passed = [bool(c.strict_pass) for c in checked] or [False] * len(
                row["instruction_id_list"]
            )
            for instruction, ok in zip(row["instruction_id_list"], passed):
                if arm == arms[0]:
                    given[kind(instruction)] += 1
                followed[arm][kind(instruction)] += ok
    lines = [
        f"IFEval instructions followed (strict), by instruction type, {len(rows)} prompts "
        f"(`python benchmarks/ifeval_by_instruction.py --results {R.scrub_paths(str(results))}`):",
        "",
        "| instruction type | given | " + " | ".join(arms) + " |",
        "| --- | --- | " + " | ".join("---" for _ in arms) + " |",
    ]
    for k in sorted(given, key=lambda k: (-given[k], k)):
        lines.append(
            f"| {k} | {given[k]} | " + " | ".join(str(followed[a][k]) for a in arms) + " |"
        )
    total = sum(given.values())
    lines.append(
        f"| all | {total} | " + " | ".join(str(sum(followed[a].values())) for a in arms) + " |"
    )
    out = results / "ifeval_by_instruction.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
