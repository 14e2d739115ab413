"""Callables handed to TRL's trainers and to the trainer's logger."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mosaic_it.io.nofollow import append_text

NOTES = logging.getLogger(__name__)  # on stderr at the command line, as -q/-v say


class RewardLog:
    """Every completion's rewards, appended to a JSONL file as they are computed: one line per
    completion with the step, the row's id, which of its group's generations it is, its text
    and each reward kind apart (``{"mosaic_pass": 0.0, "mosaic_partial": 0.75}``).

    TRL calls every reward function in turn on the same completions; :meth:`wrap` gives those
    functions, and the lines are written once the last of them has scored.
    """

    def __init__(self, rewards: list[Callable[..., list[float]]], path: Path) -> None:
        self.rewards = rewards
        self.path = path
        self._scores: dict[str, list[float]] = {}

    def wrap(self) -> list[Any]:
        """The reward functions to hand to the trainer, in order."""
        return [self._logged(reward) for reward in self.rewards]

    def _logged(self, reward: Callable[..., list[float]]) -> Callable[..., list[float]]:
        name = reward.__name__

        def logged(completions: list[Any], **columns: Any) -> list[float]:
            scores = reward(completions, **columns)
            self._scores[name] = scores
            if len(self._scores) == len(self.rewards):
                self._write(completions, columns)
            return scores

        logged.__name__ = name
        return logged

    def _write(self, completions: list[Any], columns: dict[str, Any]) -> None:
        from mosaic_it.rewards import completion_text

        scores, self._scores = self._scores, {}
        state = columns.get("trainer_state")
        step = state.global_step + 1 if state is not None else None  # the step being made
        ids = columns.get("id") or [None] * len(completions)
        seen: dict[Any, int] = {}  # a group's generations come in a row, each prompt once
        with open(append_text(self.path), "a", encoding="utf-8") as out:
            for i, (key, completion) in enumerate(zip(ids, completions)):
                generation = seen.get(key, 0)
                seen[key] = generation + 1
                line = {
                    "step": step,
                    "id": key,
                    "generation": generation,
                    "rewards": {name: values[i] for name, values in scores.items()},
                    "completion": completion_text(completion),
                }
                out.write(json.dumps(line, ensure_ascii=False) + "\n")


def warmup_note(args: Any, steps: int) -> str | None:
    """What the learning-rate warm-up does to the first steps, or None without warm-up: a
    linear warm-up starts at 0, so step 1 learns nothing, and a short run (a few GRPO steps)
    may spend much of itself warming up."""
    warmup = args.get_warmup_steps(steps)
    if warmup <= 0:
        return None
    return (
        f"learning-rate warm-up over {warmup} of {steps} step(s): step 1 runs at learning "
        f"rate 0 and the full --lr is reached at step {warmup + 1}"
        + (" (after the run ends)" if warmup >= steps else "")
        + "; --warmup-ratio 0 starts at --lr"
    )


class WarmupNote:
    """Says, as training begins, what the warm-up does to the first steps (a trainer
    callback; only its ``on_train_begin`` does anything)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        note = warmup_note(args, state.max_steps)
        if note and state.is_world_process_zero:
            NOTES.info(f"mosaic-it train: {note}")


class TiedWeightsNote(logging.Filter):
    """Drops the trainer's warning that a resumed checkpoint misses ``lm_head.weight``: a model
    whose output layer shares the embedding's weights saves them once, and loading the
    embedding restores both. Any other missing key is still shown."""

    PREFIX = "There were missing keys in the checkpoint model loaded:"

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith(self.PREFIX):
            return True
        keys = re.findall(r"'([^']+)'", text[len(self.PREFIX) :])
        return not keys or not all(k.endswith("lm_head.weight") for k in keys)
