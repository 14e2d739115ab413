"""Reading a response back in the layout a spec states: which answers it holds, and where.

:func:`read_response` finds the answers of a response (:mod:`.answers` checks them against the
spec); :func:`reference_answers` reads a reference response into each instruction's answer.
Rendering is :mod:`mosaic_it.method.layout`'s.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from mosaic_it.errors import OptionError
from mosaic_it.records import MosaicSpec, Numbering, Tags
from mosaic_it.verifier.patterns import LOOSE, READ_MODES, STRICT, Patterns, compiled_patterns

# A response is read against what its spec states. Labels are the hard part: an answer may itself
# hold lines that look like labels (a numbered list "2. ..." when the label is "{n}" + "."), so a
# response is first read *exactly*: could the engine have rendered it, for some answer texts?
# If so every layout check passes; the engine's own outputs always read this way. Only when the
# exact reading fails is the response read leniently, to say what is wrong and to give credit to
# the answers that are right. Tags are taken as unambiguous: an answer is assumed never to hold
# the sample's end tag directly followed by a label and the begin tag.


@dataclass(frozen=True, slots=True)
class AnswerSpec:
    """What a response is checked against: the answer side of a sample's spec."""

    numbering: Numbering | None
    tags: Tags | None
    answer_order: tuple[int, ...]  # numbers to answer, in the order asked
    masked: tuple[int, ...]  # numbers to leave unanswered
    instructions: int  # how many instructions the prompt holds

    @classmethod
    def of(cls, spec: MosaicSpec) -> AnswerSpec:
        """The answer side of a whole spec."""
        return cls(
            spec.numbering,
            spec.tags,
            tuple(spec.answer_order),
            tuple(spec.masked),
            spec.instructions,
        )

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


_VISIBLE = re.compile(r"\S")


def _number(match: re.Match[str]) -> int | None:
    return int(match["n"]) if "n" in match.re.groupindex else None


# how well a text answers an instruction (higher: better), to choose among exact readings
Fit = Callable[[int, str], float]


def _read_exact(
    text: str, spec: AnswerSpec, p: Patterns, fit: Fit | None = None
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


def _exact_labelled(text: str, spec: AnswerSpec, p: Patterns) -> list[ReadAnswer] | None:
    """Labels alone: find each expected label in turn, at a line start after the previous answer
    has some text. Taking the earliest such label is never worse than a later one, so this finds
    a reading whenever one exists, whatever label-like lines the answers hold."""
    order = spec.answer_order
    first = p.label(order[0]).match(text)
    if first is None:
        return None
    matches = [first]
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


def _best_labelled(text: str, spec: AnswerSpec, p: Patterns, fit: Fit) -> list[ReadAnswer] | None:
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
                previous = best[i - 1][j]
                if previous is None:
                    continue
                visible = _VISIBLE.search(text, prev.end())
                if visible is None or m.start() <= visible.start():
                    continue  # the previous answer would be empty
                score = previous[0] + fit(order[i - 1], text[prev.end() : m.start()])
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
        link = best[i][j]
        assert link is not None  # a chosen label has a reading before it (or is the first)
        j = link[1]
    chosen.reverse()
    ends = [m.start() for m in chosen[1:]] + [len(text)]
    return [ReadAnswer(n, text[m.end() : e]) for n, m, e in zip(order, chosen, ends)]


def _exact_tagged(text: str, p: Patterns) -> list[ReadAnswer] | None:
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


def _read_lenient(text: str, spec: AnswerSpec, p: Patterns) -> ReadResponse:
    """Every label (or tag) found is taken at its word: for saying what is wrong, and how much."""
    if spec.numbering:
        return _lenient_labelled(text, spec, p)
    return _lenient_tagged(text, p)


def _closed_blocks(text: str, p: Patterns) -> list[tuple[int, int]]:
    """Spans of "begin tag ... end tag" with no other begin tag in between."""
    events = sorted(
        [(m.start(), m.end(), "b") for m in p.begin.finditer(text)]
        + [(m.start(), m.end(), "e") for m in p.end.finditer(text)]
    )
    return [(b[0], e[1]) for b, e in pairwise(events) if b[2] == "b" and e[2] == "e"]


def _lenient_labelled(text: str, spec: AnswerSpec, p: Patterns) -> ReadResponse:
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


def _lenient_tagged(text: str, p: Patterns) -> ReadResponse:
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
        raise OptionError(f"mode must be one of {', '.join(READ_MODES)}, got {mode!r}")
    if not spec.checkable:
        raise OptionError("a spec with neither labels nor tags states no layout to read")
    p = compiled_patterns(spec.numbering, spec.tags, mode == LOOSE)
    # white space around the whole response is never "extra"; nor are Windows line breaks
    text = response.replace("\r\n", "\n").strip()
    framing: tuple[str, ...] = ()
    if mode == LOOSE:
        text, framing = _framing(text, spec, p)
    read = _read_exact(text, spec, p, fit) or _read_lenient(text, spec, p)
    return ReadResponse(read.answers, read.outside, read.exact, framing) if framing else read


FRAMING_WORDS = 30  # the longest first/last line taken for a remark rather than an answer


def _framing(text: str, spec: AnswerSpec, p: Patterns) -> tuple[str, tuple[str, ...]]:
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


def _remark(line: str, p: Patterns) -> bool:
    if not line.strip() or len(line.split()) > FRAMING_WORDS:
        return False
    if p.numbering and p.label_any.match(line.strip()):
        return False
    return not (hasattr(p, "begin") and (p.begin.search(line) or p.end.search(line)))


def _opens_answer(text: str, spec: AnswerSpec, p: Patterns) -> bool:
    if spec.numbering:
        return p.label_any.match(text) is not None
    return p.begin_here.match(text) is not None


def labelled_blocks_in_last(read: ReadResponse, spec: AnswerSpec, mode: str) -> list[ReadAnswer]:
    """Blocks inside the last answer that start with the label of a required instruction.

    With labels alone, a second run of the answers after the last one reads as part of the last
    answer (so does a numbered list in it): these are the blocks to look at.
    """
    if spec.numbering is None or spec.tags is not None or not read.answers:
        return []
    p = compiled_patterns(spec.numbering, None, mode == LOOSE)
    last = read.answers[-1].content
    found = [m for m in p.label_any.finditer(last) if int(m["n"]) in spec.answer_order]
    ends = [m.start() for m in found[1:]] + [len(last)]
    return [ReadAnswer(int(m["n"]), last[m.end() : e]) for m, e in zip(found, ends)]


def reference_answers(spec: MosaicSpec, reference: str) -> list[str | None] | None:
    """Each instruction's answer in a reference response (None for a skipped one), or None if
    the reference does not read exactly as the spec's layout."""
    aspec = AnswerSpec.of(spec)
    if not aspec.checkable:
        return None
    read = read_response(aspec, reference, STRICT)
    if not read.exact:
        return None
    out: list[str | None] = [None] * spec.instructions
    for number, answer in zip(spec.answer_order, read.answers):
        out[number - 1] = answer.content
    return out
