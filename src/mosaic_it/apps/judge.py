"""Pairwise LLM-judge comparison, the measure of the Mosaic-IT paper: ``mosaic-it judge``.

Two answer files (``{"id", "response"}`` lines, as ``mosaic-it eval`` and ``mosaic-it answer``
write them; a second turn's answer has the id ``ID#2``) are compared prompt by prompt by a judge
model behind any OpenAI-compatible server, through the backend of ``eval``
(:class:`~mosaic_it.apps.backends.OpenAIBackend`: concurrency, timeouts, retries). Each prompt's
turn is judged twice, once with each answer shown first; the figures are in
:mod:`mosaic_it.apps.judge_stats`. A multi-turn prompt (MT-Bench) is judged turn by turn, a later
turn with the whole conversation shown.

The judge prompt is data (:mod:`mosaic_it.apps.judge_prompt`: a JSON file; ``--judge-prompt``
another). Its
verdict marks are read strictly: a reply with none of them or with more than one kind is
*unreadable*; it is asked again (sampled, with a seed per try) up to ``verdict_retries`` times,
then counted apart, never guessed.

Every judge call is cached by (judge model, judge prompt, the text put to the judge, which holds
the prompt and both answers in their order): a re-run asks nothing again, a changed judge prompt
asks again. The cache is a JSONL file, appended as replies come, so an interrupted run keeps
what it was told.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mosaic_it.apps.backends import OpenAIBackend, ServedOptions
from mosaic_it.apps.generation import GenerationOptions, Prompt
from mosaic_it.apps.judge_prompt import VERDICT_LABELS, JudgePrompt
from mosaic_it.apps.judge_stats import UnitResult, require_scipy, summarize
from mosaic_it.apps.prompt_sets import PromptItem, read_prompt_set, turn_id
from mosaic_it.cache import cache_root
from mosaic_it.errors import InputError, OptionError
from mosaic_it.io.atomic import atomic_writer
from mosaic_it.io.nofollow import append_text
from mosaic_it.io.readers import iter_raw

__all__ = [
    "JudgeOptions",
    "compare_files",
    "default_cache",
    "judge_pairwise",
    "judge_reference",
    "read_answers",
]

SHOWN = 5


def default_cache() -> Path:
    """The judge-call cache: ``judge/calls.jsonl`` under mosaic-it's cache folder."""
    return cache_root() / "judge" / "calls.jsonl"


@dataclass(frozen=True)
class JudgeOptions:
    """How the judge is asked: the prompt file, the longest reply, the retries of an unreadable
    verdict (sampled at ``retry_temperature`` with seed ``seed + try``), the cache (None: no
    cache), the judgments file (written as they come; ``resume`` keeps the ones there), and the
    bootstrap."""

    prompt: JudgePrompt = field(default_factory=JudgePrompt.load)
    max_new_tokens: int = 1024
    verdict_retries: int = 2
    retry_temperature: float = 0.7
    seed: int = 0
    cache: Path | None = field(default_factory=default_cache)
    judgments: Path | None = None
    resume: bool = False
    resamples: int = 2000

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.verdict_retries < 0 or self.resamples < 100:
            raise OptionError(
                "--judge-max-tokens must be at least 1, --verdict-retries at least 0, "
                "--resamples at least 100"
            )
        if not 0 < self.retry_temperature <= 2:
            raise OptionError("--retry-temperature must be in (0, 2]")


@dataclass(frozen=True)
class _Call:
    key: str
    text: str


def read_answers(path: str | Path) -> dict[str, str]:
    """The answers of a responses file: id -> response; an id given twice keeps the last."""
    out: dict[str, str] = {}
    for _, where, obj in iter_raw(Path(path)):
        if not (isinstance(obj, dict) and "id" in obj and isinstance(obj.get("response"), str)):
            raise InputError(f'{where}: expected {{"id": ..., "response": "..."}}')
        out[str(obj["id"])] = obj["response"]
    return out


def _check_answers(items: Sequence[PromptItem], answers: Mapping[str, str], name: str) -> None:
    missing = [
        turn_id(i.id, t + 1)
        for i in items
        for t in range(len(i.turns))
        if turn_id(i.id, t + 1) not in answers
    ]
    if missing:
        raise InputError(
            f"{name}: no answer to {len(missing)} of the prompt set's turns (ids "
            f"{', '.join(missing[:SHOWN])}{', ...' if len(missing) > SHOWN else ''}); "
            "answer them with mosaic-it answer"
        )


def judge_pairwise(
    items: Sequence[PromptItem],
    answers_1: Mapping[str, str],
    answers_2: Mapping[str, str],
    served: ServedOptions,
    options: JudgeOptions | None = None,
    *,
    names: tuple[str, str] = ("answers_1", "answers_2"),
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Answers 1 against answers 2 on every turn of every item, each judged in both orders.

    Returns the figures of :func:`~mosaic_it.apps.judge_stats.summarize` (``results``: ``all``
    and one per test set), with the judge, the cache hits and the calls made."""
    options = options or JudgeOptions()
    require_scipy()
    _check_answers(items, answers_1, names[0])
    _check_answers(items, answers_2, names[1])
    plan: list[tuple[PromptItem, int, _Call, _Call]] = []
    for item in items:
        for turn in range(1, len(item.turns) + 1):
            a1 = [answers_1[turn_id(item.id, t)] for t in range(1, turn + 1)]
            a2 = [answers_2[turn_id(item.id, t)] for t in range(1, turn + 1)]
            calls = (
                _call(options, served, options.prompt.render(item, turn, a1, a2)),
                _call(options, served, options.prompt.render(item, turn, a2, a1)),
            )
            plan.append((item, turn, *calls))
    verdicts, asked = _judge_calls([c for p in plan for c in p[2:]], served, options, log)
    outcome_first = {"A": "win", "B": "lose", "tie": "tie"}
    outcome_second = {"A": "lose", "B": "win", "tie": "tie"}
    units = []
    for item, turn, first, second in plan:
        v1, v2 = verdicts[first.key]["verdict"], verdicts[second.key]["verdict"]
        units.append(
            UnitResult(
                item.id,
                turn,
                item.test_set,
                outcome_first[v1] if v1 else None,
                outcome_second[v2] if v2 else None,
                len(answers_1[turn_id(item.id, turn)]),
                len(answers_2[turn_id(item.id, turn)]),
            )
        )
    if options.judgments is not None:
        _write_judgments(options.judgments, plan, verdicts, names)
    return {
        "answers": {"answers_1": names[0], "answers_2": names[1]},
        "judge": {
            "model": served.model,
            "base_url": served.public_url(),
            "prompt": options.prompt.name,
            "prompt_sha256": options.prompt.digest,
            "max_tokens": options.max_new_tokens,
            "verdict_retries": options.verdict_retries,
        },
        "calls": {
            "judgments": 2 * len(plan),
            **asked,
            "cache_hit_rate": round(asked["cached"] / asked["distinct"], 4),
        },
        "results": summarize(units, options.seed, options.resamples),
        "protocol": "each turn judged twice, the answers' positions swapped; combined: win in "
        "both or win+tie = win, loss in both or loss+tie = lose, else tie; winning score = "
        "(wins - losses) / n + 1; 95% intervals: percentile bootstrap over prompts",
    }


def judge_reference(
    items: Sequence[PromptItem],
    answers: Mapping[str, str],
    served: ServedOptions,
    options: JudgeOptions | None = None,
    *,
    name: str = "answers",
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """AlpacaEval's way: each answer to a first turn against the set's reference answer, in
    both orders; the win rate with the mean length of both sides beside it (judges favour
    length)."""
    lacking = [i.id for i in items if i.reference is None]
    if lacking:
        raise InputError(
            f"the prompt set has no reference answer for {len(lacking)} prompts (ids "
            f"{', '.join(lacking[:SHOWN])}); --reference needs a set with 'reference' or "
            "'output' fields, such as builtin:alpaca-eval"
        )
    single = [PromptItem(i.id, i.turns[:1], i.test_set, i.reference) for i in items]
    refs = {i.id: i.reference or "" for i in single}
    out = judge_pairwise(single, answers, refs, served, options, names=(name, "reference"), log=log)
    out["answers"] = {"answers_1": name, "answers_2": "the prompt set's reference answers"}
    return out


def compare_files(
    prompt_set: str,
    answers_1: str | Path,
    answers_2: str | Path | None,
    served: ServedOptions,
    options: JudgeOptions | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """What ``mosaic-it judge`` does: the prompt set and answer files read, then
    :func:`judge_pairwise` (``answers_2`` given) or :func:`judge_reference` (None)."""
    items = read_prompt_set(prompt_set)
    first = read_answers(answers_1)
    if answers_2 is None:
        out = judge_reference(items, first, served, options, name=str(answers_1), log=log)
    else:
        out = judge_pairwise(
            items,
            first,
            read_answers(answers_2),
            served,
            options,
            names=(str(answers_1), str(answers_2)),
            log=log,
        )
    return {"prompt_set": prompt_set, **out}


def _call(options: JudgeOptions, served: ServedOptions, text: str) -> _Call:
    key = hashlib.sha256(
        json.dumps(
            [served.model, options.prompt.digest, options.max_new_tokens, text],
            ensure_ascii=False,
        ).encode("utf-8")
    ).hexdigest()
    return _Call(key, text)


def _judge_calls(
    calls: list[_Call],
    served: ServedOptions,
    options: JudgeOptions,
    log: Callable[[str], None],
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """key -> {"verdict", "reply", "tries"} for every call: from the judgments file (with
    ``resume``), the cache, or the judge; and how many distinct calls there were, how many
    came from the cache or the judgments file, and how many requests were sent."""
    known = _read_cache(options.cache) if options.cache else {}
    if options.resume and options.judgments is not None:
        known.update(_read_judgments(options.judgments))
    elif options.judgments is not None and options.judgments.exists():
        raise OptionError(
            f"{options.judgments} exists; pass --resume to keep its judgments and ask the "
            "missing ones, or remove it"
        )
    unique = {c.key: c for c in calls}  # the same text twice is asked once
    done = {k: known[k] for k in unique if k in known}
    pending = [c for k, c in unique.items() if k not in done]
    asked = {"distinct": len(unique), "cached": len(done), "requests": 0}
    log(f"{len(unique)} distinct judge calls, {len(done)} cached, {len(pending)} to ask")
    if not pending:
        return done, asked
    backend = OpenAIBackend(served)
    cache_file: IO[str] | None = None
    if options.cache is not None:
        options.cache.parent.mkdir(parents=True, exist_ok=True)
        cache_file = open(append_text(options.cache), "a", encoding="utf-8")  # never via a link
    try:
        for attempt in range(options.verdict_retries + 1):
            last = attempt == options.verdict_retries
            gen = GenerationOptions(
                max_new_tokens=options.max_new_tokens,
                sample=attempt > 0,
                temperature=options.retry_temperature,
                top_p=1.0,
                seed=options.seed + attempt,
            )
            unread: list[_Call] = []
            by_key = {c.key: c for c in pending}

            def on_reply(key: str, reply: str) -> None:
                verdict = options.prompt.parse(reply)
                if verdict is None and not last:
                    unread.append(by_key[key])
                    return
                entry = {"verdict": verdict, "reply": reply, "tries": attempt + 1}
                done[key] = entry
                if cache_file is not None:
                    cache_file.write(json.dumps({"key": key, **entry}, ensure_ascii=False) + "\n")
                    cache_file.flush()

            prompts = [Prompt(c.key, c.text, options.prompt.system) for c in pending]
            asked["requests"] += len(prompts)
            note = f" (try {attempt + 1})" if attempt else ""
            backend.answer(prompts, gen, on_reply, lambda s: log(f"judge: {s}{note}"))
            if not unread:
                break
            log(f"{len(unread)} verdicts unreadable; asking again (try {attempt + 2})")
            pending = unread
    finally:
        if cache_file is not None:
            cache_file.close()
    return done, asked


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for _, _, obj in iter_raw(path, lenient=True):  # a line cut by a crash is skipped
            if isinstance(obj, dict) and isinstance(obj.get("key"), str):
                verdict = obj.get("verdict")
                if verdict in (*VERDICT_LABELS, None) and isinstance(obj.get("reply"), str):
                    out[obj["key"]] = {
                        "verdict": verdict,
                        "reply": obj["reply"],
                        "tries": obj.get("tries", 1),
                    }
    return out


def _read_judgments(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for _, _, obj in iter_raw(path, lenient=True):
            if isinstance(obj, dict):
                for order in ("answers_1_first", "answers_2_first"):
                    got = obj.get(order)
                    if isinstance(got, dict) and isinstance(got.get("key"), str):
                        out[got["key"]] = {k: got.get(k) for k in ("verdict", "reply", "tries")}
    return out


def _write_judgments(
    path: Path,
    plan: list[tuple[PromptItem, int, _Call, _Call]],
    verdicts: dict[str, dict[str, Any]],
    names: tuple[str, str],
) -> None:
    """One line per judged turn: both orders' verdicts and the judge's replies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as f:
        for item, turn, first, second in plan:
            row = {
                "id": turn_id(item.id, turn),
                "test_set": item.test_set,
                "turn": turn,
                "answers_1": names[0],
                "answers_2": names[1],
                "answers_1_first": {"key": first.key, **verdicts[first.key]},
                "answers_2_first": {"key": second.key, **verdicts[second.key]},
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
