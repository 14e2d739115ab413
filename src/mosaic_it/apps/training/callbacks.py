"""Callables handed to TRL's trainers and to the trainer's logger."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mosaic_it.io.nofollow import append_text


class RewardLog:
    """A reward function that appends every completion's reward to a JSONL file as it goes."""

    def __init__(self, reward: Callable[..., list[float]], path: Path) -> None:
        self.reward = reward
        self.path = path
        self.__name__ = reward.__name__

    def __call__(self, completions: list[Any], **columns: Any) -> list[float]:
        scores = self.reward(completions, **columns)
        state = columns.get("trainer_state")
        step = state.global_step + 1 if state is not None else None  # the step being made
        ids = columns.get("id") or [None] * len(scores)
        with open(append_text(self.path), "a", encoding="utf-8") as out:
            for key, value in zip(ids, scores):
                out.write(
                    json.dumps({"step": step, "id": key, "reward": self.__name__, "value": value})
                    + "\n"
                )
        return scores


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
