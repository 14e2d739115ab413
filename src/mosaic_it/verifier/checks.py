"""Verify a response against a sample's meta-instructions: a multi-instruction-following check.

``verify(spec, response)`` reads the response in the layout the spec states (number labels,
begin/end tags) and checks every constraint the meta-instructions make: how many answers, their
labels, their order, their tags, that skipped instructions stay unanswered and that nothing
stands outside the answers. Like IFEval it gives a sample-level verdict (every check passes) and
an instruction-level rate (the share of required answers present, in the right relative place,
correctly tagged and, when references are given, about the right instruction).

The two modes follow IFEval's (Zhou et al. 2023, section 2): IFEval's *strict* accuracy checks
the response as written; its *loose* accuracy also accepts the response with markdown emphasis
removed and with its first or last line removed, so that formatting and a friendly opening or
closing line are not taken for a broken instruction. Here:

- ``strict``: the exact layout: every label and tag as rendered in the prompt, in the asked
  order, and nothing outside the answers.
- ``loose``: also forgives markdown decoration and spacing around labels and tags, the label's
  punctuation and brackets, any label wording that names the right number ("Answer 3:",
  "Instruction 3", "Task 3", ``**3.**``, ``### 3``), the answer on the label's own line or tags on
  their own lines, and a first line before the answers (or, with tags, a last line after them)
  that holds no label, no tag and at most 30 words. A tag written in another case than asked is
  *not* forgiven: it fails the check "tag_case", reported on its own.

In both modes, with ``references`` (the reference answer of every instruction), the "content"
check fails an answer whose text reads like another instruction's answer (see
:mod:`mosaic_it.verifier.content`), and "no_repeat" fails a second run of the answers after the
last one.

What a spec does not make checkable is reported as "not verifiable", never as a pass: a sample
with neither labels nor tags, or the order of an unnumbered one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mosaic_it.errors import OptionError
from mosaic_it.method.pack import RulePack
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.method.strategies.base import Check
from mosaic_it.records import MosaicSpec
from mosaic_it.verifier.answers import LAYOUT_CHECKS, answer_checks, followed_answers, tag_case
from mosaic_it.verifier.consistency import SPEC_CONSISTENT, spec_consistency
from mosaic_it.verifier.content import Topics
from mosaic_it.verifier.patterns import LOOSE, READ_MODES, STRICT
from mosaic_it.verifier.reading import (
    AnswerSpec,
    ReadResponse,
    labelled_blocks_in_last,
    read_response,
)
from mosaic_it.verifier.spec import load_spec

# what the package and its commands import from here: the verifier's whole surface
__all__ = ["Verdict", "verify"]

PASS, FAIL, NOT_VERIFIABLE = "pass", "fail", "not_verifiable"
REPEAT_CHARS = 40  # an answer's opening that, written again after the last answer, is a repeat


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one response.

    ``status`` is "pass" (every checkable constraint holds), "fail", or "not_verifiable" (the
    spec states nothing a response can be checked against). ``followed`` of ``required`` answers
    are present, in the right relative place and correctly tagged (None when not verifiable).
    """

    mode: str
    checks: tuple[Check, ...]
    required: int
    followed: int | None
    answers: tuple[int | None, ...] = field(default=())  # labels as read, in response order
    # required answers present and in the right relative place, tags aside (None: as followed)
    placed: int | None = None

    @property
    def status(self) -> str:
        if any(c.passed is False for c in self.checks):
            return FAIL
        # a consistent spec says nothing about the response: alone it makes no pass
        if all(c.passed is None for c in self.checks if c.name != SPEC_CONSISTENT):
            return NOT_VERIFIABLE
        return PASS

    @property
    def passed(self) -> bool | None:
        status = self.status
        return None if status == NOT_VERIFIABLE else status == PASS

    @property
    def instruction_rate(self) -> float | None:
        if self.followed is None or not self.required:
            return None
        return self.followed / self.required

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def reasons(self) -> str:
        """The failed checks as one line, e.g. "order: answered in the order 2, 1; ..."."""
        return "; ".join(f"{c.name}: {c.reason}" if c.reason else c.name for c in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "mode": self.mode,
            "required": self.required,
            "followed": self.followed,
            "instruction_rate": self.instruction_rate,
            "answers": list(self.answers),
            "checks": [c.to_dict() for c in self.checks],
        }


# ---------------------------------------------------------------------------- verifying


def verify(
    spec: MosaicSpec | Mapping[str, Any],
    response: str,
    *,
    mode: str = STRICT,
    instructions: Sequence[str] | None = None,
    prompt: str | None = None,
    pack: RulePack | None = None,
    references: Sequence[str | None] | None = None,
) -> Verdict:
    """Check ``response`` against every constraint the sample's meta-instructions state.

    ``instructions`` (the instruction texts as shown in the prompt, in order) or ``prompt`` (the
    sample's rendered instruction) add a "spec_consistent" check: the rule, applied again to the
    instructions, gives the spec's answer order and skipped instructions. ``references`` (one
    reference answer per instruction, in prompt order; None where unknown) add the "content"
    check, with the instruction texts when given.
    """
    if mode not in READ_MODES:
        raise OptionError(f"mode must be one of {', '.join(READ_MODES)}, got {mode!r}")
    if not isinstance(response, str):
        raise TypeError(f"a response is a text, got {type(response).__name__}")
    pack = pack or load_rule_pack()
    spec = load_spec(spec, pack)
    extra = []
    if instructions is not None or prompt is not None:
        extra.append(spec_consistency(spec, instructions=instructions, prompt=prompt, pack=pack))
    required = len(spec.answer_order)
    if not response.strip():
        return Verdict(mode, (Check("not_empty", False, "empty"), *extra), required, 0)
    aspec = AnswerSpec.of(spec)
    if not aspec.checkable:
        why = "not verifiable: the sample has neither number labels nor tags"
        checks = [Check(name, None, why) for name in LAYOUT_CHECKS]
        return Verdict(mode, (*checks, *extra), required, None)
    topics = _topics(spec, references, instructions)
    fit = (lambda n, text: topics.scores(text)[n - 1] or 0.0) if topics else None
    read = read_response(aspec, response, mode, fit)
    checks = answer_checks(read, aspec)
    if mode == STRICT and any(c.passed is False for c in checks):
        checks = _with_loose_hints(checks, aspec, response)
    if mode == LOOSE and aspec.tags is not None:
        checks.append(tag_case(aspec, response))
    content, wrong = _content_check(read, aspec, topics)
    # a second run of the answers shows in the reading with the earliest labels, which the
    # reading that fits best may have spread over the answers
    earliest = read_response(aspec, response, mode) if fit else read
    checks += [content, _repeat_check(earliest, aspec, mode, topics)]
    answers = tuple(a.number for a in read.answers)
    followed = followed_answers(read, aspec, wrong)
    placed = followed_answers(read, aspec, wrong, tagged=False)
    return Verdict(mode, (*checks, *extra), required, followed, answers, placed)


def _topics(
    spec: MosaicSpec, references: Sequence[str | None] | None, instructions: Sequence[str] | None
) -> Topics | None:
    if references is None:
        return None
    k = spec.instructions
    if len(references) != k:
        raise OptionError(f"references: {len(references)} given, the sample has {k} instructions")
    texts = list(instructions) if instructions is not None and len(instructions) == k else None
    return Topics(
        [
            None if ref is None else ref + ("\n" + texts[i] if texts else "")
            for i, ref in enumerate(references)
        ]
    )


def _content_check(
    read: ReadResponse, aspec: AnswerSpec, topics: Topics | None
) -> tuple[Check, frozenset[int]]:
    """Whether the text under each label answers that label's instruction."""
    if topics is None:
        return Check("content", None, "not verifiable: no reference answers given"), frozenset()
    if aspec.numbering is None:  # matched by position
        pairs = [
            (n, a) for n, a in zip(aspec.answer_order, [a for a in read.answers if not a.blank])
        ]
    else:
        pairs = [
            (a.number, a) for a in read.answers if a.number in aspec.answer_order and not a.blank
        ]
    wrong: dict[int, int] = {}
    for number, answer in pairs:
        like = topics.reads_like(answer.content, number)
        if like is not None and number not in wrong:
            wrong[number] = like
    if not wrong:
        return Check("content", True), frozenset()
    reason = "; ".join(
        f"the answer to {n} reads like the answer to instruction {like}"
        for n, like in wrong.items()
    )
    return Check("content", False, reason), frozenset(wrong)


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _repeat_check(read: ReadResponse, aspec: AnswerSpec, mode: str, topics: Topics | None) -> Check:
    """A second run of the answers after the last one: with labels alone it reads as part of
    the last answer. There, blocks that repeat every earlier answer under its label, a block under
    the first answer's label that repeats its first 40 characters or more, or (with references) a
    block under an earlier answer's label that reads like that instruction rather than the last
    one, is a second run."""
    blocks = labelled_blocks_in_last(read, aspec, mode)
    if not blocks:
        return Check("no_repeat", True)
    first, last = read.answers[0], read.answers[-1].number
    earlier = [(a.number, _normal(a.content)) for a in read.answers[:-1]]
    if earlier and [(b.number, _normal(b.content)) for b in blocks[: len(earlier)]] == earlier:
        return Check("no_repeat", False, "the answers are written again after the last one")
    opening = _normal(first.content)
    for block in blocks:
        repeated = False
        if block.number == first.number and len(opening) >= REPEAT_CHARS:
            text = _normal(block.content)
            repeated = text[:REPEAT_CHARS] == opening[:REPEAT_CHARS]
        if not repeated and topics is not None and block.number != last and last is not None:
            repeated = topics.reads_like(block.content, last) == block.number
        if repeated:
            return Check(
                "no_repeat",
                False,
                f"a second answer labelled {block.number} after the "
                "last answer: the answers are written again",
            )
    return Check("no_repeat", True)


def _with_loose_hints(checks: list[Check], aspec: AnswerSpec, response: str) -> list[Check]:
    """Say so when a strict failure is only a matter of decoration, spacing or case."""
    loose = {c.name: c for c in answer_checks(read_response(aspec, response, LOOSE), aspec)}
    return [
        Check(c.name, False, f"{c.reason} (loose mode accepts it)")
        if c.passed is False and loose.get(c.name, c).passed
        else c
        for c in checks
    ]
