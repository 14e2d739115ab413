"""Verifiable rewards for reinforcement learning on mosaic prompts.

A mosaic prompt carries a spec (the ``mosaic`` column) stating exactly what a right answer looks
like, and :func:`mosaic_it.verifier.checks.verify` checks it: a mosaic prompt is a verifiable RL
prompt.
The reward functions here have TRL's form, ``reward(completions, **columns) -> list[float]``
(``GRPOTrainer(reward_funcs=[mosaic_pass_reward])``): ``completions`` are texts, or lists of
messages for conversational prompts; the spec of each completion comes from the ``mosaic``
column (an object, or its JSON text).

The grading policy (the same for ``mosaic-it score`` and ``eval``)
  The default reading mode is ``loose``, as for ``score``: it is the mode that agrees with a
  careful grader (a right answer after "Sure! Here are my answers:" passes); ``strict`` is the
  exact-layout lower bound. A *cosmetic slip* is a fault that costs the pass but little credit:
  a tag written in another case than asked (in both modes: strict cannot read it, loose reads it
  and fails "tag_case"), and in strict mode whatever else loose mode forgives (decoration,
  label wording, a framing line: one slip however many strict checks it fails).

What they reward
  ``mosaic_pass_reward``: 1.0 when the answer layout keeps every constraint the
  meta-instructions state (count, labels, order, tags in the asked case, skipped instructions
  left unanswered, nothing outside the answers), else 0.0.
  ``mosaic_partial_reward``: ``(answers - TAG_SHARE x untagged - COSMETIC x slips) / (required
  + violations)``, read in loose mode: ``answers`` are the required answers present and in
  their right relative place, ``untagged`` those of them missing a begin or end tag, ``slips``
  the cosmetic slips; each answer given to a skipped instruction, text outside the answers and
  the answers written twice count as one violation. 1.0 exactly when the pass reward is 1.0. So,
  with r required answers: right (1) > one cosmetic slip (1 - 0.1/r) > one answer untagged (1 -
  0.25/r) > every answer untagged (0.75) > a skipped instruction answered too (r/(r+1)) and a
  wrong order or a missing answer (r-1 of r placed) > nothing readable or empty (0); see
  README's ordering table, tested over every rule in ``tests/apps/test_reward_policy.py``.

What they cannot see
  Whether an answer is right or even on topic: the grader checks where answers stand and how
  they are labelled and tagged, not what they say, unless ``content=True``: then the grader's
  content check compares each answer with the row's reference answers (the ``reference`` column
  that ``make-rl-prompts`` writes, the composed answer, or a ``references`` column of one answer
  per instruction), and an answer that reads like another instruction's counts as absent. A
  spec with neither labels nor tags makes nothing checkable; such a completion scores 0.0 (RL
  rows written by ``mosaic-it make-rl-prompts`` are always checkable).

Rewards never raise on a model's output: an empty, huge, binary-looking or unterminated
completion is scored (0.0 when nothing in it can be read as the answers asked). A row whose
spec cannot be read is a data error and raises :class:`mosaic_it.records.SpecError` naming
the row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mosaic_it.errors import OptionError
from mosaic_it.method.pack import RulePack
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.records import MosaicSpec, SpecError
from mosaic_it.verifier.checks import Verdict, verify
from mosaic_it.verifier.patterns import LOOSE, READ_MODES, STRICT
from mosaic_it.verifier.reading import reference_answers
from mosaic_it.verifier.spec import load_spec

__all__ = [
    "MosaicReward",
    "completion_text",
    "mosaic_partial_reward",
    "mosaic_pass_reward",
]

KINDS = ("pass", "partial")
DEFAULT_MODE = LOOSE  # the default of score and eval too: the mode that agrees with a grader
TAG_SHARE = 0.25  # credit an answer in place loses when a begin or end tag is missing
COSMETIC = 0.1  # credit one cosmetic slip costs (below any missing tag or violation)
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

    ``kind`` is "pass" or "partial"; ``mode`` is the grader's reading mode ("loose", the
    default, or "strict"); ``content`` adds the grader's content check against the row's
    reference answers (the ``reference`` or ``references`` column).
    """

    def __init__(self, kind: str = "pass", mode: str = DEFAULT_MODE, content: bool = False) -> None:
        if kind not in KINDS:
            raise OptionError(f"reward kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if mode not in READ_MODES:
            raise OptionError(f"reward mode must be one of {', '.join(READ_MODES)}, got {mode!r}")
        self.kind = kind
        self.mode = mode
        self.content = content
        self.__name__ = f"mosaic_{kind}" + ("_content" if content else "")
        self._pack: RulePack | None = None

    def __call__(
        self, completions: Sequence[Any], mosaic: Sequence[Any] | None = None, **columns: Any
    ) -> list[float]:
        if mosaic is None:
            raise SpecError("reward: no 'mosaic' column; RL rows need the sample's spec")
        if len(mosaic) != len(completions):
            raise OptionError(f"reward: {len(completions)} completions but {len(mosaic)} specs")
        specs = [_spec(m, i) for i, m in enumerate(mosaic)]
        references = self._references(specs, columns)
        scores = [
            self.score(spec, completion_text(completion), refs)
            for completion, spec, refs in zip(completions, specs, references)
        ]
        log_metric = columns.get("log_metric")
        if callable(log_metric) and scores:
            log_metric(f"{self.__name__}/share_full", sum(s == 1.0 for s in scores) / len(scores))
        return scores

    def _references(
        self, specs: list[MosaicSpec], columns: Mapping[str, Any]
    ) -> list[list[str | None] | None]:
        """Every row's reference answers, one per instruction (None for every row without
        ``content``); a row whose references cannot be read is a data error naming it."""
        if not self.content:
            return [None] * len(specs)
        per_answer, composed = columns.get("references"), columns.get("reference")
        if per_answer is None and composed is None:
            raise SpecError(
                "reward: content=True needs a 'reference' column (as make-rl-prompts writes) "
                "or a 'references' column"
            )
        out: list[list[str | None] | None] = []
        for i, spec in enumerate(specs):
            refs = per_answer[i] if per_answer is not None else None
            whole = composed[i] if composed is not None else None
            if refs is None and isinstance(whole, str):
                refs = reference_answers(spec, whole)
            if refs is None or len(refs) != spec.instructions:
                raise SpecError(
                    f"row {i}: the reference does not give {spec.instructions} answers in the "
                    "spec's layout"
                )
            out.append(list(refs))
        return out

    def _verify(
        self, spec: MosaicSpec, text: str, mode: str, references: list[str | None] | None
    ) -> Verdict | None:
        if self._pack is None:
            self._pack = load_rule_pack()
        try:
            return verify(spec, text, mode=mode, pack=self._pack, references=references)
        except (ValueError, TypeError, IndexError, KeyError, RecursionError, AssertionError):
            return None  # a grader bug on some odd text must not stop a training run

    def verdict(
        self, spec: MosaicSpec, text: str, references: list[str | None] | None = None
    ) -> Verdict | None:
        """The grader's verdict in this reward's mode, or None if the grader failed on this
        text (scored 0.0)."""
        return self._verify(spec, text, self.mode, references)

    def score(
        self, spec: MosaicSpec, text: str, references: list[str | None] | None = None
    ) -> float:
        verdict = self.verdict(spec, text, references)
        if verdict is None:
            return 0.0
        if verdict.passed:
            return 1.0
        if self.kind == "pass":
            return 0.0
        loose = verdict if self.mode == LOOSE else self._verify(spec, text, LOOSE, references)
        return 0.0 if loose is None else partial_credit(spec, loose, cosmetic_slips(verdict, loose))


def cosmetic_slips(verdict: Verdict, loose: Verdict) -> int:
    """The cosmetic slips of a response: one for a tag case other than asked, and in strict
    mode one for everything else loose mode accepts (one fault, such as a bold label, can fail
    several strict checks; a changed tag case fails strict's "tags" and counts once)."""
    case = _failed(loose, "tag_case")
    slips = 1 if case else 0
    if verdict.mode == STRICT:
        forgiven = {c.name for c in verdict.failures if not _failed(loose, c.name)}
        forgiven -= {"tags", "tag_case"} if case else {"tag_case"}
        slips += 1 if forgiven else 0
    return slips


def _failed(verdict: Verdict, name: str) -> bool:
    check = verdict.check(name)
    return check is not None and check.passed is False


def partial_credit(spec: MosaicSpec, loose: Verdict, slips: int = 0) -> float:
    """``(answers - TAG_SHARE x untagged - COSMETIC x slips) / (required + violations)`` from a
    loose verdict that is not a pass; below 1 whatever the failure."""
    if loose.passed:  # only cosmetic slips, which loose mode forgives
        return round(1.0 - COSMETIC * max(slips, 1) / max(loose.required, 1), 6)
    followed = loose.followed or 0
    placed = max(loose.placed or 0, followed)
    if not placed or not loose.required:
        return 0.0
    credit = placed - TAG_SHARE * (placed - followed) - COSMETIC * slips
    masked = set(spec.masked)
    violations = sum(1 for n in loose.answers if n in masked)
    violations += sum(1 for name in ("nothing_extra", "no_repeat") if _failed(loose, name))
    if credit >= loose.required and not violations:
        violations = 1  # a failure that leaves every answer in place still scores below 1
    return round(max(credit, 0.0) / (loose.required + violations), 6)


mosaic_pass_reward = MosaicReward("pass")
mosaic_partial_reward = MosaicReward("partial")

REWARDS = {"pass": mosaic_pass_reward, "partial": mosaic_partial_reward}
