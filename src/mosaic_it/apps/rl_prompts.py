"""Prompt-only rows for reinforcement learning: ``mosaic-it make-rl-prompts``.

``mosaic-it make-rl-prompts TRAIN OUTPUT --held-out HELD_OUT --n N`` composes N verifiable mosaic
prompts from training records with the evaluation set's own composer (:func:`evalset.make_eval`:
the same checkable layouts, the same balance over strategy/rule and instruction count, the same
token budget) and writes them in TRL's conversational prompt-only shape::

    {"id": ..., "prompt": [{"role": "user", "content": ...}], "mosaic": {...}, "reference": ...}

``mosaic`` is the spec the rewards of :mod:`mosaic_it.rewards` grade against; ``reference`` is
the composed answer (for a content check). A record whose instruction (with its input and system
prompt) also stands in the held-out records is never used, so RL never sees an evaluation
instruction; how many were left out is printed.

With ``--curriculum`` the rows come in :data:`CURRICULUM`'s levels, easiest first, each row
marked with its ``level``: a small model rarely gets a 5-instruction Maskout prompt right, so
all its answers score alike and GRPO learns nothing from the group; it does get some of the
format-only 2-instruction prompts right. ``mosaic-it train --method grpo`` keeps the file's
order for rows with levels (no shuffle), so training goes from easy to hard.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mosaic_it.apps.eval_balance import EvalSet
from mosaic_it.apps.make_eval import make_eval
from mosaic_it.errors import InputError
from mosaic_it.records import Record
from mosaic_it.rng import Rng


@dataclass(frozen=True)
class Level:
    """One level of the curriculum: which strategies, and at most how many instructions
    (None: the command's --max-instructions)."""

    number: int
    strategies: tuple[str, ...] | None
    max_instructions: int | None
    what: str


CURRICULUM = (
    Level(1, ("format",), 2, "layout only (labels, tags), 2 instructions"),
    Level(2, None, 3, "every rule (order, skipped instructions), 2-3 instructions"),
    Level(3, None, None, "every rule, 2 to --max-instructions instructions"),
)


def _key(record: Record) -> tuple[str, str]:
    return (" ".join(record.system.split()), " ".join(record.prompt.split()))


def without_held_out(
    records: Iterable[Record], held_out: Iterable[Record]
) -> tuple[list[Record], int]:
    """Training records whose instruction is not among the held-out ones; and how many were."""
    banned = {_key(r) for r in held_out}
    kept, dropped = [], 0
    for r in records:
        if _key(r) in banned:
            dropped += 1
        else:
            kept.append(r)
    return kept, dropped


def _usable(records: Iterable[Record], held_out: Iterable[Record]) -> tuple[list[Record], int]:
    kept, dropped = without_held_out(records, held_out)
    if not kept:
        raise InputError(
            "every training record is among the held-out records: nothing to "
            "compose RL prompts from"
        )
    return kept, dropped


def rl_row(item: dict[str, Any]) -> dict[str, Any]:
    """An evaluation item as a TRL prompt-only row (prompt as messages)."""
    messages = [{"role": "system", "content": item["system"]}] if item.get("system") else []
    messages.append({"role": "user", "content": item["prompt"]})
    return {
        "id": item["id"].replace("eval-", "rl-", 1),
        "prompt": messages,
        "mosaic": item["mosaic"],
        "reference": item["reference"],
    }


def make_rl_prompts(
    records: Sequence[Record],
    held_out: Sequence[Record],
    n: int,
    **options: Any,
) -> tuple[list[dict[str, Any]], EvalSet, int]:
    """(rows, the balance of what was composed, training records left out as held out).

    ``options`` are those of :func:`evalset.make_eval` (seed, max_instructions, template,
    max_tokens, pack, tokenizer): the rows are composed exactly as an evaluation set is."""
    kept, dropped = _usable(records, held_out)
    evalset = make_eval(kept, n, **options)
    return [rl_row(item) for item in evalset.items], evalset, dropped


def make_curriculum(
    records: Sequence[Record],
    held_out: Sequence[Record],
    n: int,
    *,
    seed: int = 42,
    max_instructions: int = 10,
    **options: Any,
) -> tuple[list[dict[str, Any]], list[tuple[Level, EvalSet]], int]:
    """Rows in the levels of :data:`CURRICULUM`, easiest first (``n`` shared equally, the
    remainder to the hardest), each marked with its ``level``; and each level's balance."""
    kept, dropped = _usable(records, held_out)
    base, extra = divmod(n, len(CURRICULUM))
    rows: list[dict[str, Any]] = []
    made = []
    for i, level in enumerate(CURRICULUM):
        count = base + (extra if i == len(CURRICULUM) - 1 else 0)
        if not count:
            continue
        evalset = make_eval(
            kept,
            count,
            seed=Rng(seed, "curriculum", level.number).below(2**31),
            max_instructions=min(level.max_instructions or max_instructions, max_instructions),
            strategies=level.strategies,
            **options,
        )
        for item in evalset.items:
            row = rl_row(item)
            row["id"] = row["id"].replace("rl-", f"rl-L{level.number}-", 1)
            rows.append({**row, "level": level.number})
        made.append((level, evalset))
    return rows, made, dropped
