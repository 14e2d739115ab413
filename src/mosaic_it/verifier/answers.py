"""Checking the answers read from a response against the spec: one check per constraint.

Every check names what is wrong; what the spec does not make checkable is "not verifiable",
never a pass.
"""

from __future__ import annotations

from mosaic_it.method.strategies.base import Check, format_numbers
from mosaic_it.verifier.patterns import compiled_patterns
from mosaic_it.verifier.reading import AnswerSpec, ReadResponse

LAYOUT_CHECKS = ("count", "labels", "order", "tags", "masked", "nothing_extra")


def _quote(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _present(read: ReadResponse) -> dict[int, int]:
    """Number -> position of its first non-blank answer."""
    seen: dict[int, int] = {}
    for i, a in enumerate(read.answers):
        if a.number is not None and not a.blank:
            seen.setdefault(a.number, i)
    return seen


def answer_checks(read: ReadResponse, spec: AnswerSpec) -> list[Check]:
    """Check the answers read from a response against the spec, one check per constraint."""
    numbered, tagged = spec.numbering is not None, spec.tags is not None
    unnumbered = "not verifiable: the sample has no number labels"
    if read.exact:
        ok = {name: Check(name, True) for name in LAYOUT_CHECKS}
        if not numbered:
            for name in ("labels", "order", "masked"):
                ok[name] = Check(name, None, unnumbered)
        if not tagged:
            ok["tags"] = Check("tags", None, "not verifiable: no tags were asked for")
        return list(ok.values())
    checks = [_check_count(read, spec)]
    if numbered:
        checks += [_check_labels(read, spec), _check_order(read, spec)]
    else:
        checks += [Check("labels", None, unnumbered), Check("order", None, unnumbered)]
    checks.append(
        _check_tags(read, spec)
        if tagged
        else Check("tags", None, "not verifiable: no tags were asked for")
    )
    checks.append(_check_masked(read, spec) if numbered else Check("masked", None, unnumbered))
    extra = read.outside
    checks.append(
        Check(
            "nothing_extra",
            not extra,
            f"text outside the answers: {_quote(extra[0])}" if extra else "",
        )
    )
    if all(c.passed is not False for c in checks):
        # cannot happen if the lenient reading sees everything the exact one does; never pass
        # a response that has no exact reading
        checks.append(Check("layout", False, "the response does not read as the answers asked"))
    return checks


def _check_count(read: ReadResponse, spec: AnswerSpec) -> Check:
    required = len(spec.answer_order)
    blank = [i for i, a in enumerate(read.answers, start=1) if a.blank]
    found = len(read.answers) - len(blank)
    reason = "" if found == required else f"{found} answer(s), {required} required"
    if blank:
        reason = "; ".join(filter(None, [reason, f"{len(blank)} empty answer(s)"]))
    return Check("count", not reason, reason)


def _check_labels(read: ReadResponse, spec: AnswerSpec) -> Check:
    # a numbered sample's answers are read from their labels: each has a number
    numbers = [a.number for a in read.answers if a.number is not None]
    if not numbers:
        assert spec.numbering is not None  # answer_checks checks the labels of numbered samples
        example = spec.numbering.render(spec.answer_order[0]).strip()
        return Check("labels", False, f"no number labels found (such as {example!r})")
    problems = []
    unknown = sorted({n for n in numbers if not 1 <= n <= spec.instructions})
    if unknown:
        problems.append(
            f"label(s) {format_numbers(unknown)} name no instruction "
            f"(the prompt has {spec.instructions})"
        )
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        problems.append(f"{format_numbers(twice)} labelled more than once")
    present = _present(read)
    missing = [n for n in spec.answer_order if n not in present]
    if missing:
        problems.append(f"no answer labelled {format_numbers(missing)}")
    return Check("labels", not problems, "; ".join(problems))


def _check_order(read: ReadResponse, spec: AnswerSpec) -> Check:
    present = _present(read)
    seen = sorted((pos, n) for n, pos in present.items() if n in spec.answer_order)
    got = [n for _, n in seen]
    want = [n for n in spec.answer_order if n in present]
    if not got:
        return Check("order", False, "no required answer found")
    if got == want:
        return Check("order", True)
    return Check(
        "order",
        False,
        f"answered in the order {format_numbers(got)}; "
        f"required {format_numbers(list(spec.answer_order))}",
    )


def _check_tags(read: ReadResponse, spec: AnswerSpec) -> Check:
    tags = spec.tags
    assert tags is not None
    if not read.answers:
        return Check("tags", False, f"no answer enclosed in {tags.begin!r} ... {tags.end!r}")
    problems = []
    for i, a in enumerate(read.answers, start=1):
        name = f"answer {a.number}" if a.number is not None else f"answer #{i}"
        lost = [what for what, ok in (("begin", a.begin), ("end", a.end)) if not ok]
        if lost:
            problems.append(f"{name} has no {' or '.join(lost)} tag")
    reason = "; ".join(problems)
    if problems:
        reason += f" (asked: {tags.begin!r} ... {tags.end!r})"
    return Check("tags", not problems, reason)


def _check_masked(read: ReadResponse, spec: AnswerSpec) -> Check:
    if not spec.masked:
        return Check("masked", True, "no instruction is to be skipped")
    answered = sorted(set(spec.masked) & {a.number for a in read.answers if not a.blank})
    reason = (
        f"instruction(s) {format_numbers(answered)} answered but to be skipped" if answered else ""
    )
    return Check("masked", not answered, reason)


def followed_answers(
    read: ReadResponse, spec: AnswerSpec, wrong: frozenset[int] = frozenset()
) -> int:
    """How many required answers are present, in the right relative place and correctly tagged,
    leaving out the instruction numbers in ``wrong`` (answers whose content is another's).

    Unnumbered answers are matched to the required ones by position (their order cannot be told).
    """
    if read.exact:
        return len(set(spec.answer_order) - wrong)
    if spec.numbering is None:
        answers = [a for a in read.answers if not a.blank][: len(spec.answer_order)]
        return sum(
            1 for a, n in zip(answers, spec.answer_order) if a.begin and a.end and n not in wrong
        )
    present = _present(read)
    index = {n: i for i, n in enumerate(spec.answer_order)}
    in_order = sorted((pos, index[n]) for n, pos in present.items() if n in index)
    placed = {spec.answer_order[i] for i in _longest_increasing([i for _, i in in_order])}
    return sum(
        1 for n in placed - wrong if read.answers[present[n]].begin and read.answers[present[n]].end
    )


def _longest_increasing(values: list[int]) -> list[int]:
    """One longest strictly increasing subsequence of ``values`` (patience sorting)."""
    tails: list[int] = []  # index into values of the smallest tail of each length
    back: list[int | None] = []
    for i, v in enumerate(values):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if values[tails[mid]] < v:
                lo = mid + 1
            else:
                hi = mid
        back.append(tails[lo - 1] if lo else None)
        if lo == len(tails):
            tails.append(i)
        else:
            tails[lo] = i
    out: list[int] = []
    at = tails[-1] if tails else None
    while at is not None:
        out.append(values[at])
        at = back[at]
    return out[::-1]


def _letters(text: str) -> str:
    return "".join(ch for ch in text if ch.isalpha())


def tag_case(spec: AnswerSpec, response: str) -> Check:
    """The "tag_case" check: loose mode finds tags in any case; this says whether the response
    wrote them in the case asked (a changed case is reported on its own, never forgiven)."""
    tags = spec.tags
    assert tags is not None
    p = compiled_patterns(spec.numbering, tags, True)
    changed: list[str] = []
    for asked, pattern in ((tags.begin, p.begin), (tags.end, p.end)):
        for m in pattern.finditer(response):
            written = m.group(0).strip()
            if _letters(written) != _letters(asked) and written not in changed:
                changed.append(written)
    if not changed:
        return Check("tag_case", True)
    return Check(
        "tag_case",
        False,
        f"tags written as {', '.join(map(repr, changed[:3]))}; "
        f"asked {tags.begin!r} ... {tags.end!r}",
    )
