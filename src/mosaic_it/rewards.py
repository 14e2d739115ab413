"""Verifiable rewards for reinforcement learning on mosaic prompts.

A mosaic prompt carries a spec (the ``mosaic`` column) stating exactly what a right answer looks
like, and :func:`mosaic_it.verifier.checks.verify` checks it: a mosaic prompt is a verifiable RL
prompt.
The reward functions here have TRL's form, ``reward(completions, **columns) -> list[float]``
(``GRPOTrainer(reward_funcs=[mosaic_pass_reward])``): ``completions`` are texts, or lists of
messages for conversational prompts; the spec of each completion comes from the ``mosaic``
column (an object, or its JSON text).

What they reward
  ``mosaic_pass_reward``: 1.0 when the answer layout keeps every constraint the
  meta-instructions state (count, labels, order, tags, skipped instructions left unanswered,
  nothing outside the answers), else 0.0.
  ``mosaic_partial_reward``: the share of required answers that are present, in their right
  relative place and correctly tagged, ``followed / (required + violations)``, where each
  answer given to a skipped instruction and any text outside the answers counts as one
  violation; 1.0 exactly when the pass reward is 1.0.

What they cannot see
  Whether an answer is right or even on topic: the grader checks where answers stand and how
  they are labelled and tagged, not what they say (unless ``content=True`` with a grader that
  has a content check, which then compares each answer with the row's ``reference``). A spec
  with neither labels nor tags makes nothing checkable; such a completion scores 0.0 (RL rows
  written by ``mosaic-it make-rl-prompts`` are always checkable).

Rewards never raise on a model's output: an empty, huge, binary-looking or unterminated
completion is scored (0.0 when nothing in it can be read as the answers asked). A row whose
spec cannot be read is a data error and raises :class:`mosaic_it.verifier.checks.SpecError` naming
the
row.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mosaic_it.method.rulepack import RulePack, load_rule_pack
from mosaic_it.records import MosaicSpec
from mosaic_it.verifier.checks import SpecError, Verdict, load_spec, verify

__all__ = [
    "MosaicReward",
    "completion_text",
    "mosaic_partial_reward",
    "mosaic_pass_reward",
]

KINDS = ("pass", "partial")
MAX_CHARS = 200_000  # longer completions are graded on their first MAX_CHARS characters


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the assistant messages of a message list.

    Anything else (None, bytes, numbers) becomes a text too; nothing here raises. Surrounding
    whitespace is dropped.
    """
    if isinstance(completion, str):
        text = completion
    elif isinstance(completion, bytes):
        text = completion.decode("utf-8", errors="replace")
    elif isinstance(completion, Mapping):
        text = _content(completion.get("content"))
    elif isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, Mapping)]
        answers = [m for m in messages if m.get("role", "assistant") == "assistant"]
        text = "".join(_content(m.get("content")) for m in answers)
    elif completion is None:
        text = ""
    else:
        text = str(completion)
    # graded as mosaic-it eval grades a generated answer: without surrounding whitespace (a
    # Vicuna completion begins with the space after "ASSISTANT:")
    return text[:MAX_CHARS].strip()


def _content(content: Any) -> str:
    """A message's content: a text, or a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def _spec(value: Any, row: int) -> MosaicSpec:
    if isinstance(value, MosaicSpec):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SpecError(f"row {row}: column 'mosaic' is not valid JSON ({exc.msg})") from None
    if value is None:
        raise SpecError(f"row {row}: column 'mosaic' is empty; RL rows need the sample's spec")
    if isinstance(value, Mapping):
        # a datasets column of objects holds every key of every row; absent ones read None
        value = {
            k: v
            for k, v in value.items()
            if v is not None or k in ("numbering", "tags", "rule", "meta_position")
        }
        if isinstance(value.get("rule_params"), Mapping):
            value["rule_params"] = {k: v for k, v in value["rule_params"].items() if v is not None}
    try:
        return load_spec(value)
    except SpecError as exc:
        raise SpecError(f"row {row}: column 'mosaic': {exc}") from None


class MosaicReward:
    """A TRL reward function over the ``mosaic`` column; see the module's description.

    ``kind`` is "pass" or "partial"; ``mode`` is the grader's reading mode ("strict" or
    "loose"); ``content`` adds the grader's content check against the ``reference`` column.
    """

    def __init__(self, kind: str = "pass", mode: str = "strict", content: bool = False) -> None:
        if kind not in KINDS:
            raise ValueError(f"reward kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        self.mode = mode
        self.content = content
        if content and "reference" not in inspect.signature(verify).parameters:
            raise ValueError("content=True: this mosaic-it's grader has no content check")
        self.__name__ = f"mosaic_{kind}" + ("_content" if content else "")
        self._pack: RulePack | None = None

    def __call__(
        self, completions: Sequence[Any], mosaic: Sequence[Any] | None = None, **columns: Any
    ) -> list[float]:
        if mosaic is None:
            raise SpecError("reward: no 'mosaic' column; RL rows need the sample's spec")
        if len(mosaic) != len(completions):
            raise ValueError(f"reward: {len(completions)} completions but {len(mosaic)} specs")
        references = columns.get("reference") if self.content else None
        if self.content and references is None:
            raise ValueError("reward: content=True needs a 'reference' column")
        specs = [_spec(m, i) for i, m in enumerate(mosaic)]
        scores = []
        for i, (completion, spec) in enumerate(zip(completions, specs)):
            reference = references[i] if references is not None else None
            scores.append(self.score(spec, completion_text(completion), reference))
        log_metric = columns.get("log_metric")
        if callable(log_metric) and scores:
            log_metric(f"{self.__name__}/share_full", sum(s == 1.0 for s in scores) / len(scores))
        return scores

    def verdict(self, spec: MosaicSpec, text: str, reference: str | None = None) -> Verdict | None:
        """The grader's verdict, or None if the grader failed on this text (scored 0.0)."""
        if self._pack is None:
            self._pack = load_rule_pack()
        kwargs: dict[str, Any] = {"mode": self.mode, "pack": self._pack}
        if self.content:
            kwargs["reference"] = reference
        try:
            return verify(spec, text, **kwargs)
        except (ValueError, TypeError, IndexError, KeyError, RecursionError, AssertionError):
            return None  # a grader bug on some odd text must not stop a training run

    def score(self, spec: MosaicSpec, text: str, reference: str | None = None) -> float:
        verdict = self.verdict(spec, text, reference)
        if verdict is None:
            return 0.0
        if self.kind == "pass":
            return 1.0 if verdict.passed else 0.0
        return partial_credit(spec, verdict)


def partial_credit(spec: MosaicSpec, verdict: Verdict) -> float:
    """followed / (required + violations); 1.0 only for a pass."""
    if verdict.passed:
        return 1.0
    if not verdict.followed or not verdict.required:
        return 0.0
    masked = set(spec.masked)
    violations = sum(1 for n in verdict.answers if n in masked)
    extra = verdict.check("nothing_extra")
    violations += 1 if extra is not None and extra.passed is False else 0
    # a failure that leaves every required answer in place still keeps the score below 1
    value = verdict.followed / (verdict.required + max(violations, 1))
    return round(value, 6)


mosaic_pass_reward = MosaicReward("pass")
mosaic_partial_reward = MosaicReward("partial")

REWARDS = {"pass": mosaic_pass_reward, "partial": mosaic_partial_reward}
