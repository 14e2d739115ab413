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
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from mosaic_it.method.rulepack import MASKOUT_RULES, PERMUTE_RULES, RulePack, load_rule_pack
from mosaic_it.method.strategies import STRATEGIES, Item, maskout, permute
from mosaic_it.method.strategies.base import Check, format_numbers
from mosaic_it.records import MosaicSpec, Numbering, Tags
from mosaic_it.verifier.content import Topics
from mosaic_it.verifier.parse import (
    LOOSE,
    READ_MODES,
    STRICT,
    AnswerSpec,
    ReadResponse,
    answer_checks,
    followed_answers,
    instruction_splits,
    labelled_blocks_in_last,
    read_response,
    tag_case,
)

__all__ = ["Check", "SpecError", "Verdict", "load_spec", "verify"]

SPEC_VERSIONS = (1,)  # versions of the "mosaic" spec this code reads
FORMATS = ("tags", "generic", "plain")
PASS, FAIL, NOT_VERIFIABLE = "pass", "fail", "not_verifiable"
SPEC_CONSISTENT = "spec_consistent"
REPEAT_CHARS = 40  # an answer's opening that, written again after the last answer, is a repeat
PROMPT_READINGS = 256  # readings of a prompt tried before spec consistency is called unverifiable


class SpecError(ValueError):
    """A spec that cannot be verified against: missing fields, wrong types, unknown versions."""


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


# ---------------------------------------------------------------------------- the spec

# fields a spec dict must hold: those MosaicSpec has no default for
_REQUIRED = [
    f.name for f in fields(MosaicSpec) if f.default is MISSING and f.default_factory is MISSING
]
_KNOWN = {f.name for f in fields(MosaicSpec)} | {"instructions"}


def load_spec(spec: MosaicSpec | Mapping[str, Any], pack: RulePack | None = None) -> MosaicSpec:
    """A validated spec from a MosaicSpec or its dict (an output record's "mosaic" field).

    Raises :class:`SpecError` naming what is missing or wrong.
    """
    if isinstance(spec, MosaicSpec):
        _validate(spec, pack)
        return spec
    if not isinstance(spec, Mapping):
        raise SpecError(f"a spec is an object, got {type(spec).__name__}")
    missing = [name for name in _REQUIRED if name not in spec]
    if missing:
        raise SpecError(f"spec is missing field(s) {', '.join(map(repr, missing))}")
    unknown = sorted(set(spec) - _KNOWN)
    if unknown:
        raise SpecError(f"spec has unknown field(s) {', '.join(map(repr, unknown))}")
    version = spec.get("version", 1)
    if version not in SPEC_VERSIONS:
        raise SpecError(
            f"spec version {version!r} is not known to this mosaic-it "
            f"(it reads version {', '.join(map(str, SPEC_VERSIONS))})"
        )
    d = dict(spec)
    stated = d.pop("instructions", None)
    try:
        numbering = d.pop("numbering")
        tags = d.pop("tags")
        result = MosaicSpec(
            numbering=Numbering(**numbering) if numbering is not None else None,
            tags=Tags(**tags) if tags is not None else None,
            **d,
        )
    except TypeError as exc:  # a nested object with missing or unknown fields, or not an object
        raise SpecError(f"spec: {exc}") from None
    _validate(result, pack)
    if stated is not None and stated != result.instructions:
        raise SpecError(
            f"spec: 'instructions' is {stated!r} but 'sources' names {result.instructions}"
        )
    return result


def _validate(spec: MosaicSpec, pack: RulePack | None) -> None:
    def bad(name: str, why: str) -> None:
        raise SpecError(f"spec field {name!r}: {why}")

    if spec.version not in SPEC_VERSIONS:
        raise SpecError(
            f"spec version {spec.version!r} is not known to this mosaic-it "
            f"(it reads version {', '.join(map(str, SPEC_VERSIONS))})"
        )
    _check_rule_pack(spec.rule_pack, pack or load_rule_pack())
    if not isinstance(spec.sources, list) or not spec.sources:
        bad("sources", "expected a non-empty list")
    k = len(spec.sources)
    if spec.strategy not in STRATEGIES:
        bad("strategy", f"unknown strategy {spec.strategy!r}; known: {', '.join(STRATEGIES)}")
    rules = {"format": (None,), "permute": PERMUTE_RULES, "maskout": MASKOUT_RULES}[spec.strategy]
    if spec.rule not in rules:
        bad("rule", f"{spec.rule!r} is not a {spec.strategy} rule")
    if spec.format not in FORMATS:
        bad("format", f"unknown format {spec.format!r}; known: {', '.join(FORMATS)}")
    if (spec.format == "tags") != (spec.tags is not None):
        bad("tags", f"format {spec.format!r} with tags {spec.tags!r}")
    n = spec.numbering
    if n is not None and not (
        isinstance(n.label, str)
        and n.label.count("{n}") == 1
        and isinstance(n.punctuation, str)
        and isinstance(n.newline, bool)
    ):
        bad("numbering", "expected label (a text with one {n}), punctuation (text), newline (bool)")
    t = spec.tags
    if t is not None and not (
        isinstance(t.begin, str)
        and isinstance(t.end, str)
        and t.begin.strip()
        and t.end.strip()
        and t.begin != t.end
    ):
        bad("tags", "expected two different non-empty texts, begin and end")
    for name in ("answer_order", "masked"):
        value = getattr(spec, name)
        if not isinstance(value, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= k for x in value
        ):
            bad(name, f"expected a list of instruction numbers 1..{k}")
        if len(set(value)) != len(value):
            bad(name, "names an instruction twice")
    if not spec.answer_order:
        bad("answer_order", "no instruction is to be answered")
    if sorted(spec.answer_order + spec.masked) != list(range(1, k + 1)):
        bad("answer_order", f"with 'masked' it must name every instruction 1..{k} once")
    if not isinstance(spec.rule_params, dict):
        bad("rule_params", "expected an object")
    if spec.meta_position not in (None, "before", "after", "both"):
        bad("meta_position", f"expected before, after, both or null, got {spec.meta_position!r}")
    if spec.meta_position == "both" and not (
        isinstance(spec.meta_tail, str)
        and spec.meta_tail
        and spec.meta.endswith(" " + spec.meta_tail)
    ):
        bad("meta_tail", "with meta_position \"both\" it must be the end of 'meta' after a space")


def _check_rule_pack(rule_pack: str, pack: RulePack) -> None:
    """A spec made with a newer version of the bundled pack may use rules this code doesn't know.

    Other packs are fine: a spec carries every label, tag and number it needs.
    """
    if not isinstance(rule_pack, str):
        raise SpecError(f"spec field 'rule_pack': expected a text, got {type(rule_pack).__name__}")
    name, _, version = rule_pack.rpartition("/")
    newer = not version.isdigit() or int(version) > int(pack.version)
    if name == pack.name and newer:
        raise SpecError(
            f"spec made with rule pack {rule_pack}, a version this mosaic-it does not "
            f"know (it has {pack.id})"
        )


def answer_spec(spec: MosaicSpec) -> AnswerSpec:
    return AnswerSpec(
        spec.numbering, spec.tags, tuple(spec.answer_order), tuple(spec.masked), spec.instructions
    )


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
        raise ValueError(f"mode must be one of {', '.join(READ_MODES)}, got {mode!r}")
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
    aspec = answer_spec(spec)
    if not aspec.checkable:
        why = "not verifiable: the sample has neither number labels nor tags"
        checks = [
            Check(name, None, why)
            for name in ("count", "labels", "order", "tags", "masked", "nothing_extra")
        ]
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
    return Verdict(mode, (*checks, *extra), required, followed, answers)


def _topics(
    spec: MosaicSpec, references: Sequence[str | None] | None, instructions: Sequence[str] | None
) -> Topics | None:
    if references is None:
        return None
    k = spec.instructions
    if len(references) != k:
        raise ValueError(f"references: {len(references)} given, the sample has {k} instructions")
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
        like = topics.reads_like(answer.content, number)  # type: ignore[arg-type]
        if like is not None and number not in wrong:
            wrong[number] = like  # type: ignore[index]
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


def spec_consistency(
    spec: MosaicSpec,
    *,
    instructions: Sequence[str] | None = None,
    prompt: str | None = None,
    pack: RulePack | None = None,
) -> Check:
    """The "spec_consistent" check: the spec's rule, re-applied to the instructions, gives its
    answer order and skips. With ``prompt`` the instructions are read back from the rendered
    instruction; it passes when one reading of it is consistent."""
    if instructions is not None:
        problem = _consistency_problem(spec, list(instructions))
        return Check(SPEC_CONSISTENT, problem is None, problem or "")
    assert prompt is not None
    return read_prompt(spec, prompt, pack)[0]


def read_prompt(
    spec: MosaicSpec, prompt: str, pack: RulePack | None = None
) -> tuple[Check, list[str] | None]:
    """The instruction texts of a rendered prompt: the first reading consistent with the spec
    (None if there is none), with the "spec_consistent" check."""
    name = SPEC_CONSISTENT
    cfg = (pack or load_rule_pack()).format
    readings = instruction_splits(
        spec.numbering,
        spec.instructions,
        prompt,
        *spec.meta_parts(),
        cfg["instruction_separators"],
        cfg["meta_separators"],
    )
    first_problem = None
    for tried, texts in enumerate(readings, start=1):
        problem = _consistency_problem(spec, texts)
        if problem is None:
            return Check(name, True), texts
        first_problem = first_problem or problem
        if tried >= PROMPT_READINGS:
            return Check(
                name,
                None,
                f"not verifiable: the prompt reads in more than "
                f"{PROMPT_READINGS} ways; pass the instructions instead",
            ), None
    if first_problem is None:
        return Check(
            name,
            False,
            f"the prompt does not read as {spec.instructions} instructions in the spec's layout",
        ), None
    return Check(name, False, first_problem), None


def reference_answers(spec: MosaicSpec, reference: str) -> list[str | None] | None:
    """Each instruction's answer in a reference response (None for a skipped one), or None if
    the reference does not read exactly as the spec's layout."""
    aspec = answer_spec(spec)
    if not aspec.checkable:
        return None
    read = read_response(aspec, reference, STRICT)
    if not read.exact:
        return None
    out: list[str | None] = [None] * spec.instructions
    for number, answer in zip(spec.answer_order, read.answers):
        out[number - 1] = answer.content
    return out


def _consistency_problem(spec: MosaicSpec, texts: list[str]) -> str | None:
    k = spec.instructions
    if len(texts) != k:
        return f"{len(texts)} instructions given, the spec has {k}"
    items = [Item(i, text) for i, text in enumerate(texts, start=1)]
    numbered = spec.numbering is not None
    if spec.strategy == "permute":
        if spec.masked:
            return "a permute sample skips nothing"
        return permute.check(spec.rule or "", items, spec.rule_params, spec.answer_order, numbered)
    if spec.strategy == "maskout":
        return maskout.check(
            spec.rule or "", items, spec.rule_params, spec.answer_order, spec.masked, numbered
        )
    if spec.answer_order != list(range(1, k + 1)) or spec.masked:
        return (
            f"a format-only sample answers 1..{k} in order, the spec says "
            f"{format_numbers(spec.answer_order)}"
        )
    return None
