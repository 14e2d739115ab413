"""How often the verifier agrees with a careful human grader, per mode.

tests/data/agreement/eval.jsonl holds 60 items made by ``mosaic-it make-eval builtin:example
... --n 60 --max-instructions 3 --seed 13 --template none``; responses.txt holds hand-written
responses to them, each labelled accept or reject by reading the item's prompt (before any
verifier ran), with "contested" where a fair grader could go either way. The targets: on the
uncontested responses, loose agrees at least 95% of the time with at most 1% false accepts,
and strict never accepts what the grader rejects.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from mosaic_it import verify
from mosaic_it.apps.score import read_eval
from mosaic_it.apps.score_report import EvalItem

DATA = Path(__file__).parents[1] / "data" / "agreement"
HEADER = "@@@@ "


@dataclass(frozen=True)
class Labelled:
    item: str
    accept: bool
    contested: bool
    what: str
    response: str
    line: int


def read_labelled(path: Path = DATA / "responses.txt") -> list[Labelled]:
    rows: list[Labelled] = []
    head: tuple[str, bool, bool, str, int] | None = None
    body: list[str] = []

    def close() -> None:
        if head is not None:
            rows.append(Labelled(*head[:4], "\n".join(body).strip("\n"), head[4]))

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(HEADER):
            close()
            fields, _, what = line[len(HEADER) :].partition(" | ")
            item, verdict, *flags = fields.split()
            assert verdict in ("accept", "reject") and flags in ([], ["contested"]), number
            head, body = (item, verdict == "accept", bool(flags), what, number), []
        elif head is not None:
            body.append(line)
    close()
    return rows


def confusion(items: dict[str, EvalItem], rows: list[Labelled], mode: str) -> dict[str, Counter]:
    """Per group ("uncontested", "contested"): counts of (human label, verifier verdict)."""
    out = {"uncontested": Counter(), "contested": Counter()}
    for row in rows:
        item = items[row.item]
        v = verify(
            item.spec,
            row.response,
            mode=mode,
            references=item.references,
            instructions=item.instructions,
        )
        human = "accept" if row.accept else "reject"
        machine = "pass" if v.passed else "fail"
        out["contested" if row.contested else "uncontested"][(human, machine)] += 1
    return out


def rates(c: Counter) -> tuple[int, float, float]:
    n = sum(c.values())
    agree = c[("accept", "pass")] + c[("reject", "fail")]
    return n, agree / n, c[("reject", "pass")] / n


def table(results: dict[str, dict[str, Counter]]) -> str:
    head = (
        "| mode | responses | human accept: pass / fail | human reject: pass / fail | "
        "agreement | false accepts |"
    )
    lines = [head, "| --- | --- | --- | --- | --- | --- |"]
    for mode, groups in results.items():
        for group, c in groups.items():
            n, agree, false_accepts = rates(c)
            lines.append(
                f"| {mode} ({group}) | {n} | {c[('accept', 'pass')]} / {c[('accept', 'fail')]} | "
                f"{c[('reject', 'pass')]} / {c[('reject', 'fail')]} | {100 * agree:.1f}% | "
                f"{100 * false_accepts:.1f}% |"
            )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def agreement():
    eval_items, invalid = read_eval(DATA / "eval.jsonl")
    assert not invalid
    items = {item.id: item for item in eval_items}
    rows = read_labelled()
    return items, rows, {mode: confusion(items, rows, mode) for mode in ("loose", "strict")}


def test_the_labelled_set_covers_every_strategy_rule_and_layout(agreement):
    items, rows, _ = agreement
    assert len(rows) >= 200 and {r.item for r in rows} == set(items)
    specs = [items[r.item].spec for r in rows]
    assert {s.strategy for s in specs} == {"format", "permute", "maskout"}
    assert len({(s.strategy, s.rule) for s in specs}) == 16
    assert {s.layout_kind for s in specs} >= {"tags", "generic"} and any(
        s.numbering is None for s in specs
    )
    labels = Counter((r.accept, r.contested) for r in rows)
    assert labels[(True, False)] >= 80 and labels[(False, False)] >= 80


def test_agreement_with_the_human_grader(agreement, capsys):
    _, _, results = agreement
    with capsys.disabled():
        print("\n" + table(results))
    n, agree, false_accepts = rates(results["loose"]["uncontested"])
    assert agree >= 0.95 and false_accepts <= 0.01, (n, agree, false_accepts)
    assert results["strict"]["uncontested"][("reject", "pass")] == 0
    assert results["strict"]["contested"][("reject", "pass")] == 0
