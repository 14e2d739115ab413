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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mosaic_it.apps.make_eval import EvalSet, make_eval
from mosaic_it.io.files import (
    InputError,
)
from mosaic_it.records import Record


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
    kept, dropped = without_held_out(records, held_out)
    if not kept:
        raise InputError(
            "every training record is among the held-out records: nothing to "
            "compose RL prompts from"
        )
    evalset = make_eval(kept, n, **options)
    return [rl_row(item) for item in evalset.items], evalset, dropped
