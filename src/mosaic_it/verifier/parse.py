"""Reading a response (or a rendered prompt) back in the layout a spec states.

:func:`read_response` finds the answers of a response, :func:`answer_checks` checks them against
the spec, and :func:`instruction_splits` reads a rendered instruction block back into its
instructions. Rendering is in :mod:`.format`.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from mosaic_it.method.strategies.base import Check, format_numbers
from mosaic_it.records import Numbering, Tags

# ============================================================================ reading a response
#
# A response is read against what its spec states. Labels are the hard part: an answer may itself
# hold lines that look like labels (a numbered list "2. ..." when the label is "{n}" + "."), so a
# response is first read *exactly*: could the engine have rendered it, for some answer texts?
# If so every layout check passes; the engine's own outputs always read this way. Only when the
# exact reading fails is the response read leniently, to say what is wrong and to give credit to
# the answers that are right. Tags are taken as unambiguous: an answer is assumed never to hold
# the sample's end tag directly followed by a label and the begin tag.

STRICT, LOOSE = "strict", "loose"
READ_MODES = (STRICT, LOOSE)

_MARKDOWN = "*_#"
_DECOR = r"[*_#]*"  # markdown emphasis and heading marks, ignored around labels when loose
_TAG_DECOR = r"[*_]*"  # emphasis marks, ignored around tags when loose
_SPACE = r"[ \t]*"


@dataclass(frozen=True, slots=True)
class AnswerSpec:
    """What a response is checked against: the answer side of a sample's spec."""

    numbering: Numbering | None
    tags: Tags | None
    answer_order: tuple[int, ...]  # numbers to answer, in the order asked
    masked: tuple[int, ...]  # numbers to leave unanswered
    instructions: int  # how many instructions the prompt holds

    @property
    def checkable(self) -> bool:
        """Whether anything about the layout can be checked (labels or tags were asked for)."""
        return self.numbering is not None or self.tags is not None


@dataclass(frozen=True, slots=True)
class ReadAnswer:
    """One answer as found in a response."""

    number: int | None  # the number its label names; None when the sample is unnumbered
    content: str  # the answer text, without its label and tags
    begin: bool = True  # opened by the begin tag (always True when no tags are asked)
    end: bool = True  # closed by the end tag

    @property
    def blank(self) -> bool:
        return not self.content.strip()


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """The answers found in a response, and any text found outside them."""

    answers: tuple[ReadAnswer, ...]
    outside: tuple[str, ...]  # non-blank text outside every answer, stripped
    exact: bool  # read exactly as the spec asks: every layout check passes
    framing: tuple[str, ...] = ()  # first/last lines forgiven in loose mode (see _framing)


def _flex(text: str) -> str:
    """A regex for ``text`` with any spacing between its words and symbols (case: caller's flag)."""
    return _SPACE.join(re.escape(token) for token in re.findall(r"\w+|[^\w\s]", text))


# words a model may write before the number instead of the label's own ("Answer 3:"); loose
# mode accepts any of them, or the label's own text, or markdown emphasis/heading marks
LABEL_WORDS = (
    "answer",
    "instruction",
    "task",
    "question",
    "response",
    "reply",
    "part",
    "item",
    "step",
    "prompt",
    "request",
    "query",
    "number",
    "no",
)
_LABEL_WORD = r"(?P<word>(?:" + "|".join(LABEL_WORDS) + r")\.?(?![A-Za-z]))"


def _label_regex(numbering: Numbering, number: str, loose: bool, before: str = "") -> str:
    """Regex for the label of ``number`` (itself a regex: ``\\d+`` for any), captured as ``n``.

    ``before`` is a regex of what may directly follow the label (the begin tag): loose mode then
    leaves a ":" or "." that starts it to the tag ("### 1 ::res_start::").
    """
    prefix, suffix = numbering.label.format(n="\0").split("\0", 1)
    num = rf"(?<!\d)(?P<n>{number})(?!\d)"
    if not loose:
        tail = suffix + numbering.punctuation + ("\n" if numbering.newline else " ")
        return re.escape(prefix) + num + re.escape(tail)
    # loose: markdown marks, spacing, brackets and punctuation (".", ":", ")" or none) may vary,
    # and the label's words may be any label word; what must be there is the number, plus the
    # label's own text, a label word or an emphasis/heading mark (so that a plain "2." line of
    # a list stays text, unless the label itself is a bare number)
    core_prefix, core_suffix = prefix.strip(_MARKDOWN + " "), suffix.strip(_MARKDOWN + " ")
    lead = _SPACE + r"(?:(?P<mark>[*#][*_#]*)|_*)" + _SPACE
    pre = rf"(?P<pre>{_flex(core_prefix)})?" if core_prefix else ""
    suf = rf"(?P<suf>{_flex(core_suffix)})?" if core_suffix else ""
    other = r"(?(word)|(?(mark)|(?!)))"  # no own text: a label word or a mark is needed
    # the label's own text, all of it, or else ``other``; a label made of markdown marks alone
    # ("### {n}", "**{n}**") needs a mark or a word, so that a list's "2." stays text
    own = other if any(ch in _MARKDOWN for ch in prefix + suffix) else ""
    for group, core in (("suf", core_suffix), ("pre", core_prefix)):
        if core:
            own = f"(?({group}){own}|{other})"
    avoid = rf"(?!\s*(?:{before}))" if before else ""
    return (
        lead
        + rf"(?:{_LABEL_WORD}{_SPACE})?"
        + pre
        + _SPACE
        + _DECOR
        + num
        + _DECOR
        + _SPACE
        + suf
        + own
        + _SPACE
        + _DECOR
        + rf"(?:{avoid}{_SPACE}[.:)](?!\d))?"
        + _DECOR
        + r"(?![A-Za-z0-9])"
    )


def _tag_regex(tag: str, loose: bool) -> str:
    if not loose:
        return re.escape(tag)
    return _TAG_DECOR + _SPACE + _flex(tag) + _SPACE + _TAG_DECOR


class _Patterns:
    """The compiled regexes that read responses with one label and tag style in one mode."""

    def __init__(self, numbering: Numbering | None, tags: Tags | None, loose: bool) -> None:
        self.numbering = numbering
        self.loose = loose
        self.flags = re.MULTILINE | re.DOTALL | (re.IGNORECASE if loose else 0)
        self._labels: dict[int, re.Pattern[str]] = {}
        begin = _tag_regex(tags.begin, loose) if tags else ""
        self.before = begin
        if numbering:
            self.label_any = re.compile(
                "^" + _label_regex(numbering, r"\d+", loose, begin), self.flags
            )
        if tags:
            end = _tag_regex(tags.end, loose)
            self.begin = re.compile(begin, self.flags)
            self.end = re.compile(end, self.flags)
            self.begin_here = re.compile((r"\s*" if loose else "") + begin, self.flags)
            self.tail = re.compile(end + r"\Z", self.flags)
            if numbering:
                label = _label_regex(numbering, r"\d+", loose, begin) + (r"\s*" if loose else "")
                self.head = re.compile(label + begin, self.flags)
                # between answers: the end tag, white space (a line break at least, when strict,
                # so that the label starts a line), the next label and its begin tag
                gap = r"\s*" if loose else r"\s*\n"
                self.boundary = re.compile(end + gap + label + begin, self.flags)
            else:
                self.head = re.compile(begin, self.flags)
                self.boundary = re.compile(end + r"\s*" + begin, self.flags)

    def label(self, number: int) -> re.Pattern[str]:
        """The label of one number, at the start of a line."""
        pattern = self._labels.get(number)
        if pattern is None:
            body = _label_regex(
                self.numbering,
                str(number),
                self.loose,  # type: ignore[arg-type]
                self.before,
            )
            pattern = self._labels[number] = re.compile("^" + body, self.flags)
        return pattern


@lru_cache(maxsize=256)
def _patterns(numbering: Numbering | None, tags: Tags | None, loose: bool) -> _Patterns:
    # compiling is most of the cost of reading a response; a data set has few label/tag styles
    return _Patterns(numbering, tags, loose)


_VISIBLE = re.compile(r"\S")


def _number(match: re.Match[str]) -> int | None:
    return int(match["n"]) if "n" in match.re.groupindex else None


# how well a text answers an instruction (higher: better), to choose among exact readings
Fit = Callable[[int, str], float]


def _read_exact(
    text: str, spec: AnswerSpec, p: _Patterns, fit: Fit | None = None
) -> ReadResponse | None:
    """The answers, if the response is a rendering of the spec for some answer texts."""
    if spec.tags:
        answers = _exact_tagged(text, p)
    elif fit is not None:
        answers = _best_labelled(text, spec, p, fit)
    else:
        answers = _exact_labelled(text, spec, p)
    if answers is None or any(a.blank for a in answers):
        return None
    if spec.numbering:
        if tuple(a.number for a in answers) != spec.answer_order:
            return None
    elif len(answers) != len(spec.answer_order):
        return None
    return ReadResponse(tuple(answers), (), True)


def _exact_labelled(text: str, spec: AnswerSpec, p: _Patterns) -> list[ReadAnswer] | None:
    """Labels alone: find each expected label in turn, at a line start after the previous answer
    has some text. Taking the earliest such label is never worse than a later one, so this finds
    a reading whenever one exists, whatever label-like lines the answers hold."""
    order = spec.answer_order
    matches = [p.label(order[0]).match(text)]
    if matches[0] is None:
        return None
    for number in order[1:]:
        visible = _VISIBLE.search(text, matches[-1].end())
        if visible is None:
            return None
        match = p.label(number).search(text, visible.start() + 1)
        if match is None:
            return None
        matches.append(match)
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return [ReadAnswer(n, text[m.end() : e]) for n, m, e in zip(order, matches, ends)]


def _best_labelled(text: str, spec: AnswerSpec, p: _Patterns, fit: Fit) -> list[ReadAnswer] | None:
    """Labels alone, when answers hold label-like lines (a list "2." under the label "{n}."):
    of every exact reading, the one whose answers best fit their instructions (dynamic
    programming over the places each label could start)."""
    order = spec.answer_order
    places = [[m for m in p.label(n).finditer(text)] for n in order]
    places[0] = [m for m in places[0] if m.start() == 0]
    # best[i][j]: (score, previous j) of readings whose label i starts at places[i][j]
    best: list[list[tuple[float, int] | None]] = [[(0.0, -1) for _ in places[0]]]
    for i in range(1, len(order)):
        row: list[tuple[float, int] | None] = []
        for m in places[i]:
            choice = None
            for j, prev in enumerate(places[i - 1]):
                if best[i - 1][j] is None:
                    continue
                visible = _VISIBLE.search(text, prev.end())
                if visible is None or m.start() <= visible.start():
                    continue  # the previous answer would be empty
                score = best[i - 1][j][0] + fit(order[i - 1], text[prev.end() : m.start()])
                if choice is None or score > choice[0]:
                    choice = (score, j)
            row.append(choice)
        best.append(row)
    last = [
        (b[0] + fit(order[-1], text[m.end() :]), j)
        for j, (m, b) in enumerate(zip(places[-1], best[-1]))
        if b is not None and _VISIBLE.search(text, m.end())
    ]
    if not last:
        return None
    j = max(last)[1]
    chosen = []
    for i in range(len(order) - 1, -1, -1):
        chosen.append(places[i][j])
        j = best[i][j][1]  # type: ignore[index]
    chosen.reverse()
    ends = [m.start() for m in chosen[1:]] + [len(text)]
    return [ReadAnswer(n, text[m.end() : e]) for n, m, e in zip(order, chosen, ends)]


def _exact_tagged(text: str, p: _Patterns) -> list[ReadAnswer] | None:
    """Tags: every "end tag, (label,) begin tag" seam separates two answers."""
    head = p.head.match(text)
    if head is None:
        return None
    numbers, starts, ends = [_number(head)], [head.end()], []
    for seam in p.boundary.finditer(text, head.end()):
        ends.append(seam.start())
        starts.append(seam.end())
        numbers.append(_number(seam))
    tail = p.tail.search(text, starts[-1])
    if tail is None:
        return None
    ends.append(tail.start())
    return [ReadAnswer(n, text[s:e]) for n, s, e in zip(numbers, starts, ends)]


def _read_lenient(text: str, spec: AnswerSpec, p: _Patterns) -> ReadResponse:
    """Every label (or tag) found is taken at its word: for saying what is wrong, and how much."""
    if spec.numbering:
        return _lenient_labelled(text, spec, p)
    return _lenient_tagged(text, p)


def _closed_blocks(text: str, p: _Patterns) -> list[tuple[int, int]]:
    """Spans of "begin tag ... end tag" with no other begin tag in between."""
    events = sorted(
        [(m.start(), m.end(), "b") for m in p.begin.finditer(text)]
        + [(m.start(), m.end(), "e") for m in p.end.finditer(text)]
    )
    return [(b[0], e[1]) for b, e in pairwise(events) if b[2] == "b" and e[2] == "e"]


def _lenient_labelled(text: str, spec: AnswerSpec, p: _Patterns) -> ReadResponse:
    labels = list(p.label_any.finditer(text))
    if spec.tags:
        # a label-like line inside a tagged answer is part of that answer, unless a begin tag
        # follows it (then it opens an answer whose predecessor lost its end tag)
        blocks = _closed_blocks(text, p)  # sorted and disjoint
        starts = [start for start, _ in blocks]

        def inside(pos: int) -> bool:
            i = bisect_left(starts, pos) - 1
            return i >= 0 and pos < blocks[i][1]

        labels = [m for m in labels if p.begin_here.match(text, m.end()) or not inside(m.start())]
    outside = [text[: labels[0].start()] if labels else text]
    answers = []
    for m, nxt in zip(labels, labels[1:] + [None]):
        body = text[m.end() : nxt.start() if nxt else len(text)]
        begin = end = True
        if spec.tags:
            opened = p.begin_here.match(body)
            begin = opened is not None
            if opened:
                body = body[opened.end() :]
            closing = None
            for closing in p.end.finditer(body):
                pass  # the last end tag closes the answer
            end = closing is not None
            if closing:
                outside.append(body[closing.end() :])
                body = body[: closing.start()]
        answers.append(ReadAnswer(int(m["n"]), body, begin, end))
    return ReadResponse(tuple(answers), _visible(outside), False)


def _lenient_tagged(text: str, p: _Patterns) -> ReadResponse:
    """Unnumbered: answers are what the tags enclose; a lone tag still marks an answer."""
    events = sorted(
        [(m.start(), m.end(), "b") for m in p.begin.finditer(text)]
        + [(m.start(), m.end(), "e") for m in p.end.finditer(text)]
    )
    answers: list[ReadAnswer] = []
    outside: list[str] = []
    cursor, opened = 0, None
    for start, end, kind in events:
        if start < cursor:
            continue  # overlaps a tag already read
        if kind == "b":
            if opened is None:
                outside.append(text[cursor:start])
            else:  # a second begin tag: the open answer lost its end tag
                answers.append(ReadAnswer(None, text[opened:start], True, False))
            opened = end
        elif opened is not None:
            answers.append(ReadAnswer(None, text[opened:start], True, True))
            opened = None
        else:  # an end tag with no begin tag: an answer that lost its begin tag
            answers.append(ReadAnswer(None, text[cursor:start], False, True))
        cursor = end
    if opened is not None:
        answers.append(ReadAnswer(None, text[opened:], True, False))
    else:
        outside.append(text[cursor:])
    return ReadResponse(tuple(answers), _visible(outside), False)


def _visible(parts: list[str]) -> tuple[str, ...]:
    return tuple(part.strip() for part in parts if part.strip())


def read_response(
    spec: AnswerSpec, response: str, mode: str = STRICT, fit: Fit | None = None
) -> ReadResponse:
    """Find the answers of ``response`` in the layout ``spec`` states (labels and/or tags).

    Loose mode first sets aside a framing first or last line (see :func:`_framing`). With
    ``fit``, of the exact readings of a labelled response the one whose answers fit their
    instructions best is taken (otherwise the one with the earliest labels).
    """
    if mode not in READ_MODES:
        raise ValueError(f"mode must be one of {', '.join(READ_MODES)}, got {mode!r}")
    if not spec.checkable:
        raise ValueError("a spec with neither labels nor tags states no layout to read")
    p = _patterns(spec.numbering, spec.tags, mode == LOOSE)
    # white space around the whole response is never "extra"; nor are Windows line breaks
    text = response.replace("\r\n", "\n").strip()
    framing: tuple[str, ...] = ()
    if mode == LOOSE:
        text, framing = _framing(text, spec, p)
    read = _read_exact(text, spec, p, fit) or _read_lenient(text, spec, p)
    return ReadResponse(read.answers, read.outside, read.exact, framing) if framing else read


FRAMING_WORDS = 30  # the longest first/last line taken for a remark rather than an answer


def _framing(text: str, spec: AnswerSpec, p: _Patterns) -> tuple[str, tuple[str, ...]]:
    """A first line before the first answer, or (with tags) a last line after the last one, that
    holds no label, no tag and is short: "Sure! Here are the answers:", "Hope this helps.".

    IFEval's loose score forgives a response's first and last line for the same reason: nothing
    in the prompt asks a model not to introduce or close its answer.
    """
    dropped = []
    first, sep, rest = text.partition("\n")
    if sep and _remark(first, p) and _opens_answer(rest.lstrip(), spec, p):
        dropped.append(first.strip())
        text = rest.strip()
    if spec.tags:
        rest, sep, last = text.rpartition("\n")
        if sep and _remark(last, p) and p.tail.search(rest.rstrip()):
            dropped.append(last.strip())
            text = rest.strip()
    return text, tuple(dropped)


def _remark(line: str, p: _Patterns) -> bool:
    if not line.strip() or len(line.split()) > FRAMING_WORDS:
        return False
    if p.numbering and p.label_any.match(line.strip()):
        return False
    return not (hasattr(p, "begin") and (p.begin.search(line) or p.end.search(line)))


def _opens_answer(text: str, spec: AnswerSpec, p: _Patterns) -> bool:
    if spec.numbering:
        return p.label_any.match(text) is not None
    return p.begin_here.match(text) is not None


# ---------------------------------------------------------------------------- layout checks

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
    numbers = [a.number for a in read.answers]
    if not numbers:
        example = spec.numbering.render(spec.answer_order[0]).strip()  # type: ignore[union-attr]
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
    i = tails[-1] if tails else None
    while i is not None:
        out.append(values[i])
        i = back[i]
    return out[::-1]


# ---------------------------------------------------------------------------- reading a prompt


def instruction_splits(
    numbering: Numbering | None,
    count: int,
    prompt: str,
    head: str,
    tail: str,
    instruction_separators: list[str],
    meta_separators: list[str],
) -> Iterator[list[str]]:
    """Every way ``prompt`` reads as :func:`render_instruction`'s output for ``count``
    instructions, with meta-instruction text ``head`` before them and ``tail`` after them: the
    instruction texts, earliest split first. An instruction may hold lines that look like the
    next label, so there can be more than one reading."""
    blocks = [prompt]
    if head or tail:
        blocks = []
        for sep in sorted(set(meta_separators), key=len, reverse=True):
            before = head + sep if head else ""
            after = sep + tail if tail else ""
            if (
                prompt.startswith(before)
                and prompt.endswith(after)
                and (len(prompt) >= len(before) + len(after))
            ):
                blocks.append(prompt[len(before) : len(prompt) - len(after)])
    if numbering is None:
        # an unnumbered sample always separates its instructions by the longest separator
        separators = [max(instruction_separators, key=len)]
    else:
        separators = sorted(set(instruction_separators), key=len, reverse=True)
    labels = [numbering.render(n) if numbering else "" for n in range(1, count + 1)]
    for block in blocks:
        for sep in separators:
            if block.startswith(labels[0]):
                yield from _splits(block, len(labels[0]), labels, 1, sep, [])


def _splits(
    block: str, start: int, labels: list[str], i: int, sep: str, done: list[str]
) -> Iterator[list[str]]:
    if i == len(labels):
        if block[start:].strip():
            yield done + [block[start:]]
        return
    seam = sep + labels[i]
    at = block.find(seam, start + 1)
    while at != -1:
        if block[start:at].strip():
            yield from _splits(block, at + len(seam), labels, i + 1, sep, done + [block[start:at]])
        at = block.find(seam, at + 1)


# ---------------------------------------------------------------------------- loose-mode reports


def _letters(text: str) -> str:
    return "".join(ch for ch in text if ch.isalpha())


def tag_case(spec: AnswerSpec, response: str) -> Check:
    """The "tag_case" check: loose mode finds tags in any case; this says whether the response
    wrote them in the case asked (a changed case is reported on its own, never forgiven)."""
    tags = spec.tags
    assert tags is not None
    p = _patterns(spec.numbering, tags, True)
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


def labelled_blocks_in_last(read: ReadResponse, spec: AnswerSpec, mode: str) -> list[ReadAnswer]:
    """Blocks inside the last answer that start with the label of a required instruction.

    With labels alone, a second run of the answers after the last one reads as part of the last
    answer (so does a numbered list in it): these are the blocks to look at.
    """
    if spec.numbering is None or spec.tags is not None or not read.answers:
        return []
    p = _patterns(spec.numbering, None, mode == LOOSE)
    last = read.answers[-1].content
    found = [m for m in p.label_any.finditer(last) if int(m["n"]) in spec.answer_order]
    ends = [m.start() for m in found[1:]] + [len(last)]
    return [ReadAnswer(int(m["n"]), last[m.end() : e]) for m, e in zip(found, ends)]
