"""verify(): the engine's own outputs always pass; wrong answers are caught, for the right reason.

The mutation test compares the verifier with an independent oracle: a regular expression that
says whether a text *could* be the rendering of a spec for some answer texts. A mutation that
the oracle still accepts is indistinguishable from a right answer (an answer may hold a line
that looks like a label); every other mutation that the spec makes checkable must be caught.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from mosaic_it import MosaicSpec, Numbering, Record, Tags, load_rule_pack, mosaic, verify
from mosaic_it.method.compose import SamplePlan, compose
from mosaic_it.method.layout import Layout, choose_layout
from mosaic_it.method.strategies import maskout, permute
from mosaic_it.method.strategies.base import Item
from mosaic_it.method.strategies.maskout import MASKOUT_RULES
from mosaic_it.method.strategies.permute import PERMUTE_RULES
from mosaic_it.records import SpecError
from mosaic_it.rng import Rng
from mosaic_it.verifier.spec import load_spec

from ..conftest import make_records, real_data_or_skip
from ..hypothesis_or_skip import HealthCheck, given, settings, st

PACK = load_rule_pack()
LABELS = PACK.layout["labels"]
PUNCTUATION = PACK.layout["label_punctuation"]
WORDS = [
    "apple",
    "river",
    "stone",
    "bright",
    "quiet",
    "garden",
    "seven",
    "travel",
    "window",
    "music",
    "energy",
]
SEP = PACK.layout["response_separator"]


# ---------------------------------------------------------------------------- generated records


@st.composite
def answer_texts(draw) -> str:
    """Answer text, often with lines that look like number labels (lists, headings, bold)."""
    lines = [" ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6)))]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["words", "label", "label", "blank", "markdown"]))
        word = draw(st.sampled_from(WORDS))
        if kind == "label":
            label = draw(st.sampled_from(LABELS)).format(n=draw(st.integers(1, 7)))
            punctuation = draw(st.sampled_from(PUNCTUATION))
            lines.append(label + punctuation + draw(st.sampled_from([" ", "\n"])) + word)
        elif kind == "blank":
            lines.append("")
        elif kind == "markdown":
            lines.append(draw(st.sampled_from(["**", "# ", "_", "- "])) + word)
        else:
            lines.append(word + " " + draw(st.sampled_from(WORDS)))
    return "\n".join(lines)


@st.composite
def instruction_texts(draw) -> str:
    start = draw(st.sampled_from(["Write", "list", "Explain", '"Name"', "3 ways", "Écris", "zip"]))
    return " ".join([start] + draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=8)))


@st.composite
def record_sets(draw) -> list[Record]:
    n = draw(st.integers(2, 14))
    return [
        Record(
            id=f"h{i}",
            instruction=draw(instruction_texts()),
            output=draw(answer_texts()),
            input=draw(st.sampled_from(["", "", "some input\nwith two lines"])),
        )
        for i in range(n)
    ]


def engine_samples(records, seed, epochs=2, max_instructions=6):
    return list(
        mosaic(
            records,
            epochs=epochs,
            seed=seed,
            max_instructions=max_instructions,
            template="none",
            max_tokens=100_000,
        )
    )


# ---------------------------------------------------------------------------- oracle and mutations


def could_render(spec: MosaicSpec, response: str) -> bool:
    """Whether ``response`` is the spec's rendering for some non-blank answer texts (strict).

    Written independently of the verifier: one regular expression, backtracking over every split.
    With tags, an answer is taken never to hold the tags themselves.
    """
    text = response.strip()
    if not text:
        return False
    if spec.tags:
        b, e = re.escape(spec.tags.begin), re.escape(spec.tags.end)
        free = rf"(?:(?!{b}|{e})[\s\S])"
        body = rf"(?:(?!{b}|{e})\s)*(?!{b}|{e})\S{free}*?"
    else:
        body = r"\s*\S.*?"
    pattern = ""
    for i, n in enumerate(spec.answer_order):
        label = re.escape(spec.numbering.render(n)) if spec.numbering else ""
        if i:
            pattern += (r"\s*\n" if spec.numbering else r"\s*") if spec.tags else r"\n"
        pattern += label + (b + body + e if spec.tags else body)
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def unit(spec: MosaicSpec, number: int, output: str, label: str | None = None) -> str:
    label = spec.numbering.render(number) if label is None and spec.numbering else label or ""
    if spec.tags:
        output = spec.tags.begin + output + spec.tags.end
    return label + output


def misspell(tag: str) -> str:
    letters = [i for i, ch in enumerate(tag) if ch.isalpha()]
    if len(letters) < 2:
        return tag[:-1] + "?"
    i = letters[len(letters) // 2 - 1]
    if tag[i] == tag[i + 1]:
        return tag[:i] + "X" + tag[i + 1 :]
    return tag[:i] + tag[i + 1] + tag[i] + tag[i + 2 :]  # two letters swapped


def mutations(spec: MosaicSpec, outputs: dict[int, str]) -> dict[str, str]:
    """Wrong answers made from the right one (kind -> response); no-ops are left out."""
    order = list(spec.answer_order)
    units = [unit(spec, n, outputs[n]) for n in order]
    m = len(units)
    out: dict[str, str] = {}
    if m >= 2:
        swapped = list(units)
        swapped[0], swapped[-1] = swapped[-1], swapped[0]
        out["swap"] = SEP.join(swapped)
    out["drop"] = SEP.join(units[: m // 2] + units[m // 2 + 1 :])
    if spec.masked:
        extra = spec.masked[0]
        answered = sorted(order + [extra]) if order == sorted(order) else order + [extra]
        out["add_masked"] = SEP.join(unit(spec, n, outputs[n]) for n in answered)
    out["duplicate"] = SEP.join(units + units[-1:])
    out["extra_text"] = "Here are my answers:\n\n" + SEP.join(units)
    if spec.numbering:
        out["renumber_seq"] = SEP.join(
            unit(spec, n, outputs[n], spec.numbering.render(i))
            for i, n in enumerate(order, start=1)
        )
        out["renumber_shift"] = SEP.join(
            unit(spec, n, outputs[n], spec.numbering.render(n + 1)) for n in order
        )
        out["decorate_labels"] = SEP.join(
            unit(spec, n, outputs[n], f"**{spec.numbering.render(n).rstrip()}** ") for n in order
        )
    if spec.tags:
        t = spec.tags
        mid = m // 2
        for kind, old, new in (
            ("tag_removed_end", t.end, ""),
            ("tag_removed_begin", t.begin, ""),
            ("tag_misspelled", t.begin, misspell(t.begin)),
            ("tag_case", t.end, t.end.swapcase()),
        ):
            changed = list(units)
            # the begin tag is the first occurrence in a unit, the end tag the last
            u = changed[mid]
            changed[mid] = u.replace(old, new, 1) if old == t.begin else new.join(u.rsplit(old, 1))
            out[kind] = SEP.join(changed)
    original = SEP.join(units)
    return {kind: text for kind, text in out.items() if text != original}


NEEDS = {  # what a spec must state for a mutation kind to be checkable at all
    "swap": "numbered",
    "renumber_seq": "numbered",
    "renumber_shift": "numbered",
    "decorate_labels": "numbered",
    "tag_removed_end": "tags",
    "tag_removed_begin": "tags",
    "tag_misspelled": "tags",
    "tag_case": "tags",
}


def checkable(kind: str, spec: MosaicSpec) -> bool:
    need = NEEDS.get(kind, "either")
    if need == "numbered":
        return spec.numbering is not None
    if need == "tags":
        return spec.tags is not None
    return spec.numbering is not None or spec.tags is not None


class Tally:
    """Per mutation kind: made, checkable by the spec, indistinguishable from right, caught."""

    def __init__(self) -> None:
        self.rows: dict[str, Counter] = defaultdict(Counter)

    def add(self, kind: str, spec: MosaicSpec, response: str) -> None:
        row = self.rows[kind]
        verdict = verify(spec, response)
        row["made"] += 1
        if not (spec.numbering or spec.tags):
            assert verdict.status == ("not_verifiable" if response.strip() else "fail")
            return
        valid = could_render(spec, response)
        # the layout checks say exactly what the oracle says: pass iff the text could be right
        # (a second run of the answers may also fail "no_repeat", which the oracle cannot see)
        layout_ok = all(c.passed is not False for c in verdict.checks if c.name != "no_repeat")
        assert layout_ok == valid, (kind, verdict.reasons(), response, spec)
        if checkable(kind, spec):
            row["checkable"] += 1
            if valid:
                row["indistinguishable"] += 1
            elif verdict.passed is False:
                row["caught"] += 1
        if verdict.passed is False:
            assert verdict.reasons()  # a failure always says why
        loose = verify(spec, response, mode="loose")
        row["caught_loose"] += loose.passed is False

    def report(self, title: str) -> tuple[int, int]:
        print(f"\n{title}")
        print(
            f"{'mutation':18} {'made':>6} {'checkable':>9} {'indisting.':>10} {'caught':>7} "
            f"{'share':>7} {'loose':>6}"
        )
        total_due = total_caught = 0
        for kind, row in sorted(self.rows.items()):
            due = row["checkable"] - row["indistinguishable"]
            total_due += due
            total_caught += row["caught"]
            share = f"{row['caught'] / due:.0%}" if due else "-"
            print(
                f"{kind:18} {row['made']:6} {row['checkable']:9} {row['indistinguishable']:10} "
                f"{row['caught']:7} {share:>7} {row['caught_loose']:6}"
            )
        print(
            f"caught {total_caught} of {total_due} checkable, distinguishable mutations "
            f"({total_caught / max(total_due, 1):.1%})"
        )
        return total_caught, total_due


def check_sample(sample, by_id, tally: Tally) -> None:
    spec = sample.spec
    outputs = {i: by_id[s].output for i, s in enumerate(spec.sources, start=1)}
    prompts = [by_id[s].prompt for s in spec.sources]
    for mode in ("strict", "loose"):
        v = verify(spec, sample.output, mode=mode, instructions=prompts)
        if spec.numbering is None and spec.tags is None:
            assert v.status == "not_verifiable" or v.check("spec_consistent").passed
            assert all(c.passed is None for c in v.checks if c.name != "spec_consistent")
        else:
            assert v.passed, (mode, v.reasons(), sample.output, spec)
            assert v.instruction_rate == 1.0
    assert verify(spec.to_dict(), sample.output, prompt=sample.instruction).passed is not False
    assert could_render(spec, sample.output) or not (spec.numbering or spec.tags)
    for kind, response in mutations(spec, outputs).items():
        tally.add(kind, spec, response)


# ---------------------------------------------------------------------------- round trip

TALLY = Tally()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=record_sets(), seed=st.integers(0, 10_000))
def test_engine_outputs_verify_and_mutations_are_caught(records, seed):
    by_id = {r.id: r for r in records}
    for sample in engine_samples(records, seed):
        check_sample(sample, by_id, TALLY)


def test_mutation_report():
    """Runs after the property test above (file order): prints and asserts the catch rate."""
    if not TALLY.rows:
        pytest.skip("the property test did not run")
    caught, due = TALLY.report("mutations of generated samples (strict)")
    assert due > 100 and caught == due


def test_every_label_style_verifies_even_when_answers_hold_the_same_labels():
    """Each label style x punctuation x newline, with and without tags, for every strategy; the
    answers hold numbered lines in the very style of the sample's labels."""
    tally = Tally()
    for li, label in enumerate(LABELS):
        for punct in PUNCTUATION:
            for newline in (False, True):
                for tags in (None, Tags("[START]", "[END]")):
                    numbering = Numbering(label, punct, newline)
                    records = [
                        Record(
                            f"x{i}",
                            f"{w} the {' '.join(WORDS[: i + 1])}",
                            f"intro {i}\n"
                            + "\n".join(numbering.render(n) + f"item {n}" for n in (1, 2, 3, 4))
                            + ("\n\n" + numbering.render(i + 2) + "tail" if i % 2 else ""),
                        )
                        for i, w in enumerate(["Write", "bake", "Cut", "dig"])
                    ]
                    by_id = {r.id: r for r in records}
                    layout = Layout(
                        "tags" if tags else "generic",
                        numbering,
                        tags,
                        "Answer.",
                        False,
                        "\n",
                        "\n",
                        SEP,
                    )
                    for strategy in ("format", "permute", "maskout"):
                        for attempt in range(1):
                            plan = SamplePlan(
                                ("styles", li, punct, newline, strategy, attempt), layout, strategy
                            )
                            check_sample(compose(PACK, plan, records, 0), by_id, tally)
    caught, due = tally.report("mutations, every label style, answers holding label lines")
    assert caught == due


def test_bulk_synthetic_samples_verify(tmp_path):
    records = make_records(240, seed=3)
    by_id = {r.id: r for r in records}
    tally = Tally()
    samples = engine_samples(records, seed=11, epochs=2, max_instructions=8)
    for sample in samples:
        check_sample(sample, by_id, tally)
    caught, due = tally.report("mutations of make_records samples")
    assert caught == due
    # these answers hold no label-like lines, yet an extra labelled block after an answer reads
    # as part of that answer when there are no tags: only such additions can go unseen
    unseen = {kind for kind, row in tally.rows.items() if row["indistinguishable"]}
    assert unseen <= {"duplicate", "add_masked"}, tally.rows


@pytest.mark.slow
def test_real_data_every_sample_verifies():
    from mosaic_it import read_records

    records = list(read_records(real_data_or_skip()))
    statuses = Counter()
    for sample in mosaic(records):
        prompts = [records[i].prompt for i in sample.spec.sources]
        v = verify(sample.spec, sample.output, instructions=prompts)
        statuses[v.status] += 1
        if sample.spec.numbering or sample.spec.tags:
            assert v.passed, (v.reasons(), sample.output[:500])
        else:
            assert v.status == "not_verifiable"
        assert v.check("spec_consistent").passed
    assert statuses["pass"] > 500 and not statuses["fail"]


# ---------------------------------------------------------------------------- scripted answers

TEXTS = [
    "Write a haiku about autumn leaves falling slowly",
    "describe the water cycle",
    "Name the three primary colors of light",
    "Explain why the sky looks blue during the day and red at sunset",
    "Give one synonym for happy",
    "quote this famous line back please",
]
ANSWERS = [f"answer to instruction {n}" for n in range(1, 7)]
LABELLED = Numbering("({n})", ":", False)


def spec_for(strategy, rule, numbering=LABELLED, tags=None, params=None):
    items = [Item(i, t) for i, t in enumerate(TEXTS, start=1)]
    params = params or {}
    masked: list[int] = []
    if strategy == "permute":
        order = permute.expected_order(rule, items, params)
    elif strategy == "maskout":
        masked = maskout.expected_masked(rule, items, params)
        order = [n for n in range(1, 7) if n not in masked]
    else:
        order = list(range(1, 7))
    assert order is not None and masked is not None
    return MosaicSpec(
        sources=list(range(6)),
        epoch=0,
        strategy=strategy,
        rule=rule,
        layout_kind="tags" if tags else "generic",
        numbering=numbering,
        tags=tags,
        meta="m",
        meta_position="before",
        answer_order=order,
        masked=masked,
        rule_params=params,
        rule_pack=PACK.id,
    )


def respond(spec, order, label=None):
    return SEP.join(unit(spec, n, ANSWERS[n - 1], label(n) if label else None) for n in order)


PERMUTE_PARAMS = {"FIX": {"order": [3, 1, 6, 2, 5, 4]}}
MASKOUT_PARAMS = {"FIX": {"positions": [2, 5]}, "WORD_LONG": {"n": 2}, "WORD_SHORT": {"n": 1}}


@pytest.mark.parametrize("rule", PERMUTE_RULES)
def test_permute_answered_in_the_given_order_fails_on_order(rule):
    spec = spec_for("permute", rule, params=PERMUTE_PARAMS.get(rule))
    assert verify(spec, respond(spec, spec.answer_order)).passed
    v = verify(spec, respond(spec, range(1, 7)), instructions=TEXTS)
    assert [c.name for c in v.failures] == ["order"], v.reasons()
    want = ", ".join(map(str, spec.answer_order))
    assert v.check("order").reason == f"answered in the order 1, 2, 3, 4, 5, 6; required {want}"
    assert v.check("spec_consistent").passed
    assert 0 < v.instruction_rate < 1


TAGS = Tags("<<ANS_BEGIN>>", "<<ANS_END>>")


@pytest.mark.parametrize("rule", MASKOUT_RULES)
def test_maskout_answering_everything_fails_on_count_and_masked(rule):
    spec = spec_for("maskout", rule, tags=TAGS, params=MASKOUT_PARAMS.get(rule))
    assert verify(spec, respond(spec, spec.answer_order)).passed
    v = verify(spec, respond(spec, range(1, 7)))
    assert {c.name for c in v.failures} == {"count", "masked"}, v.reasons()
    skipped = ", ".join(map(str, spec.masked))
    assert v.check("masked").reason == f"instruction(s) {skipped} answered but to be skipped"
    assert v.followed == v.required  # every required answer is there and in place


@pytest.mark.parametrize("rule", MASKOUT_RULES)
def test_maskout_skipping_too_much_fails_on_count_and_labels(rule):
    spec = spec_for("maskout", rule, params=MASKOUT_PARAMS.get(rule))
    v = verify(spec, respond(spec, spec.answer_order[1:]))
    assert {c.name for c in v.failures} == {"count", "labels"}, v.reasons()
    assert v.check("labels").reason == f"no answer labelled {spec.answer_order[0]}"
    assert v.followed == v.required - 1


def test_labels_alone_cannot_tell_an_answered_skip_from_a_line_of_the_answer_before():
    """Without tags, "(2): ..." after answer 1 may be a line of answer 1: that reading is taken,
    since the engine's own answers hold such lines. A skipped instruction answered *first* is
    caught; with tags, every answered skip is."""
    spec = spec_for("maskout", "EVEN")  # answer 1, 3, 5
    assert verify(spec, respond(spec, range(1, 7))).passed
    spec = spec_for("maskout", "ODD")  # answer 2, 4, 6
    assert verify(spec, respond(spec, range(1, 7))).check("masked").passed is False
    spec = spec_for("maskout", "EVEN", tags=TAGS)
    assert verify(spec, respond(spec, range(1, 7))).check("masked").passed is False


def test_format_failures_name_their_reason():
    tags = Tags("<START>", "<END>")
    spec = spec_for("format", None, tags=tags)
    good = respond(spec, range(1, 7))
    assert verify(spec, good).passed and verify(spec, good.replace("\n", "\r\n")).passed
    cases = {
        "": {"not_empty": "empty"},
        "  \n ": {"not_empty": "empty"},
        good.replace("<END>", "", 1): {"tags": "answer 1 has no end tag"},
        good.replace("(3): <START>", "(3): ", 1): {"tags": "answer 3 has no begin tag"},
        good.replace("(2): ", "", 1): {"labels": "no answer labelled 2", "count": "5 answer(s)"},
        "Sure!\n" + good: {"nothing_extra": "text outside the answers: 'Sure!'"},
        good + "\nHope this helps.": {"nothing_extra": "'Hope this helps.'"},
        good.replace("\n", "\r\n").replace("(5)", "(4)"): {"labels": "4 labelled more than once"},
        good.replace("(6):", "(7):"): {
            "labels": "label(s) 7 name no instruction (the prompt has 6)"
        },
        good.replace("<START>", "<start>"): {"tags": "(loose mode accepts it)"},
    }
    for response, reasons in cases.items():
        v = verify(spec, response)
        assert v.passed is False
        for name, reason in reasons.items():
            assert reason in v.check(name).reason, (name, v.reasons())


def test_unnumbered_tagged_checks_count_and_tags_only():
    spec = spec_for("format", None, numbering=None, tags=Tags("[[BOA]]", "[[EOA]]"))
    good = respond(spec, range(1, 7))
    v = verify(spec, good)
    assert v.passed and v.check("order").passed is None and v.check("masked").passed is None
    assert verify(spec, respond(spec, [2, 1, 3, 4, 5, 6])).passed  # order is not checkable
    v = verify(spec, respond(spec, range(1, 6)))
    assert [c.name for c in v.failures] == ["count"] and v.followed == 5
    v = verify(spec, good.replace("[[EOA]]", "", 1))
    assert [c.name for c in v.failures] == ["tags"], v.reasons()
    assert v.check("tags").reason.startswith("answer #1 has no end tag") and v.followed == 5


def test_unnumbered_untagged_is_not_verifiable():
    spec = spec_for("format", None, numbering=None)
    v = verify(spec, "anything at all")
    assert v.status == "not_verifiable" and v.passed is None and v.instruction_rate is None
    assert verify(spec, "").status == "fail"


def test_loose_forgives_decoration_spacing_and_label_wording():
    spec = spec_for(
        "permute",
        "REVERSE",
        numbering=Numbering("Task {n}", ".", False),
        tags=Tags("[RES_START]", "[RES_END]"),
    )
    good = respond(spec, spec.answer_order)
    variants = [
        good.replace("Task ", "**Task ").replace(". [", ".** ["),
        good.replace("Task ", "## Task "),
        good.replace("[RES_END]", "[ RES_END ]"),
        good.replace(". [", ":\n["),
        good.replace("[RES_END]", "**[RES_END]**"),
        good.replace(". [", " ["),
        good.replace("Task ", "Answer ").replace(". [", ": ["),
        good.replace("Task ", "**Instruction ").replace(". [", ":**\n["),
        good.replace("Task ", "### ").replace(". [", ".\n["),
        "Sure! Here are the answers, in the order you asked for:\n\n" + good,
        good + "\n\nLet me know if you need anything else.",
    ]
    for text in variants:
        loose = verify(spec, text, mode="loose")
        assert loose.passed, (text, loose.reasons())
        assert verify(spec, text).passed is False
    swapped = respond(spec, list(range(1, 7))).replace("Task ", "**Task ")
    assert verify(spec, swapped, mode="loose").check("order").passed is False
    # tags on lines of their own: the line breaks are the answer's own white space
    own_lines = good.replace("]answer", "]\nanswer").replace("[RES_END]", "\n[RES_END]")
    assert verify(spec, own_lines).passed and verify(spec, own_lines, mode="loose").passed


def test_loose_keeps_what_is_not_decoration():
    spec = spec_for(
        "permute", "REVERSE", numbering=Numbering("({n})", ":", True), tags=Tags("<START>", "<END>")
    )
    good = respond(spec, spec.answer_order)
    assert verify(spec, good, mode="loose").passed
    rejected = {
        # a changed tag case is its own check, never forgiven
        good.replace("<START>", "<start>"): "tag_case",
        # a first line that holds an answer's tag or label is not a remark
        "(1): <START>Here it goes\n" + good: "labels",
        # two framing lines, or a long one, are text outside the answers
        "Sure!\nHere you are:\n" + good: "nothing_extra",
        " ".join(["word"] * 40) + "\n" + good: "nothing_extra",
        # a wrong number is wrong in any wording
        good.replace("(6):", "Answer 5:"): "labels",
    }
    for text, check in rejected.items():
        v = verify(spec, text, mode="loose")
        assert v.check(check).passed is False, (text, v.reasons())
    # a plain "2." line is text of a list, not a label, when the label has its own brackets
    plain = Numbering("({n})", ":", True)
    listed = spec_for("permute", "REVERSE", numbering=plain)
    answers = {n: f"Steps:\n1. mix {n}\n2. bake {n}" for n in range(1, 7)}
    text = SEP.join(plain.render(n) + answers[n] for n in listed.answer_order)
    assert verify(listed, text, mode="loose").passed
    assert verify(listed, text.replace("(6):\n", "6.\n"), mode="loose").passed is False


def test_loose_label_punctuation_leaves_a_tag_its_colon():
    """Regression: "### 1 ::res_start::" lost the tag's first colon to the label in loose mode,
    and a right answer scored an instruction rate of 0."""
    spec = spec_for(
        "permute",
        "REVERSE",
        numbering=Numbering("### {n}", "", False),
        tags=Tags("::res_start::", "::res_end::"),
    )
    good = respond(spec, spec.answer_order)
    assert "### 6 ::res_start::" in good
    for mode in ("strict", "loose"):
        v = verify(spec, good, mode=mode)
        assert v.passed and v.instruction_rate == 1.0, (mode, v.reasons())
    broken = good.replace("::res_end::", "", 1)  # lenient reading: the label must leave the ":"
    v = verify(spec, broken, mode="loose")
    assert v.check("tags").reason.startswith("answer 6 has no end tag"), v.reasons()
    assert v.followed == v.required - 1


def test_content_check_sees_answers_under_the_wrong_label():
    texts = [
        "Write a haiku about autumn rain.",
        "Explain why the sky is blue.",
        "List three uses of baking soda in cleaning.",
    ]
    refs = [
        "Soft rain on red leaves, maple boats drift down past the lit windows of autumn.",
        (
            "Sunlight is scattered by air molecules; blue light has a short wavelength and "
            "is scattered the most, so the sky looks blue."
        ),
        "Baking soda cleans ovens, removes odors from carpets and scrubs sinks and tiles.",
    ]
    spec = spec_for("permute", "REVERSE", numbering=Numbering("({n})", "", False))
    spec.sources = spec.sources[:3]
    spec.answer_order = [3, 2, 1]
    answers = {
        1: "Rain taps the leaves / red and gold maple boats / autumn windows glow",
        2: "Air molecules scatter short blue wavelengths of sunlight far more than red.",
        3: "Use baking soda to scrub sinks, deodorize carpets and clean the oven.",
    }

    def response(pairs):
        return "\n\n".join(f"({label}) {answers[n]}" for label, n in pairs)

    right = response([(3, 3), (2, 2), (1, 1)])
    v = verify(spec, right, references=refs, instructions=texts)
    assert v.passed and v.check("content").passed, v.reasons()
    # labels in the asked order, the text under them in the original order
    v = verify(spec, response([(3, 1), (2, 2), (1, 3)]), mode="loose", references=refs)
    assert v.check("content").passed is False and v.passed is False
    assert "the answer to 3 reads like the answer to instruction 1" in v.check("content").reason
    assert v.followed == 1 and [c.name for c in v.failures] == ["content"]
    # without references, content is not verifiable and layout decides
    assert verify(spec, response([(3, 1), (2, 2), (1, 3)])).check("content").passed is None
    # the whole answer set written twice: labels alone read it as part of the last answer
    twice = right + "\n\n" + right
    assert verify(spec, twice).check("no_repeat").passed is False
    assert verify(spec, twice, mode="loose", references=refs).passed is False
    # a numbered list in the last answer is not a second run
    listed = right.replace(answers[1], "Three lines:\n(3) Rain taps\n(2) red leaves\n(1) glow")
    assert verify(spec, listed, references=refs).passed


def test_a_list_in_an_answer_is_not_taken_for_labels():
    spec = spec_for("maskout", "ODD", numbering=Numbering("{n}", ".", False))
    answers = {2: "Steps:\n1. mix\n2. bake\n3. eat", 4: "4. four", 6: "done\n\n6. six"}
    response = SEP.join(spec.numbering.render(n) + answers[n] for n in spec.answer_order)
    v = verify(spec, response)
    assert v.passed, v.reasons()
    # the same text with answer 4 missing fails: nothing can stand in for its label
    dropped = SEP.join(spec.numbering.render(n) + answers[n] for n in (2, 6))
    v = verify(spec, dropped)
    assert v.passed is False and "no answer labelled 4" in v.check("labels").reason
    assert v.followed == 2


# ---------------------------------------------------------------------------- spec consistency


def test_spec_consistency_is_rederived_from_the_rule():
    spec = spec_for("permute", "LENGTH_WORD")
    good = respond(spec, spec.answer_order)
    assert verify(spec, good, instructions=TEXTS).check("spec_consistent").passed
    spec.answer_order = list(range(1, 7))  # a spec that lies about its rule
    c = verify(spec, respond(spec, spec.answer_order), instructions=TEXTS).check("spec_consistent")
    assert c.passed is False and c.reason.startswith("LENGTH_WORD orders these instructions")
    spec = spec_for("maskout", "WORD_SHORT", params={"n": 1})
    spec.masked, spec.answer_order = [1], [2, 3, 4, 5, 6]
    c = verify(spec, respond(spec, spec.answer_order), instructions=TEXTS).check("spec_consistent")
    assert c.passed is False and "WORD_SHORT skips instruction(s) 2 here" in c.reason
    c = verify(spec, "(2): x", instructions=TEXTS[:3]).check("spec_consistent")
    assert c.passed is False and c.reason == "3 instructions given, the spec has 6"


def test_spec_consistency_from_the_rendered_prompt():
    records = [Record(i, t, ANSWERS[i]) for i, t in enumerate(TEXTS)]
    for s in range(40):
        layout = choose_layout(Rng("prompt", s), PACK)
        plan = SamplePlan(("prompt", s), layout, ("permute", "maskout")[s % 2])
        sample = compose(PACK, plan, records, 0)
        c = verify(sample.spec, sample.output, prompt=sample.instruction).check("spec_consistent")
        assert c.passed, (c, sample.instruction)
        wrong = verify(sample.spec, sample.output, prompt="unrelated")
        assert wrong.check("spec_consistent").passed is False


# ---------------------------------------------------------------------------- bad specs


def test_bad_specs_are_clear_errors():
    good = spec_for("permute", "REVERSE").to_dict()
    assert load_spec(good).rule == "REVERSE"
    cases = [
        (
            {k: v for k, v in good.items() if k not in ("answer_order", "masked")},
            "missing field(s) 'answer_order', 'masked'",
        ),
        ({**good, "version": 2}, "spec version 2 is not known"),
        ({**good, "rule_pack": "mosaic-it-default/9"}, "rule pack mosaic-it-default/9"),
        ({**good, "rule": "SIDEWAYS"}, "'SIDEWAYS' is not a permute rule"),
        ({**good, "answer_order": [1, 2, 9]}, "expected a list of instruction numbers 1..6"),
        ({**good, "numbering": {"label": "x"}}, "spec:"),
        ({**good, "colour": "red"}, "unknown field(s) 'colour'"),
        ({**good, "instructions": 5}, "'instructions' is 5"),
        ("not a dict", "a spec is an object"),
    ]
    for spec, message in cases:
        with pytest.raises(SpecError, match=re.escape(message)):
            verify(spec, "(1): x")
    reversed_ = respond(spec_for("permute", "REVERSE"), [6, 5, 4, 3, 2, 1])
    assert verify({**good, "rule_pack": "my-pack/3"}, reversed_).passed  # any other pack is fine
    with pytest.raises(ValueError, match="mode"):
        verify(good, "x", mode="lenient")
