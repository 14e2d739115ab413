"""What each record rules out for layouts, noted once (FitFacts), against the test itself
(layout_fits): the facts must give the same verdict for every label style and blank line."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

from mosaic_it import MosaicConfig, Mosaicker, read_records
from mosaic_it.method.fitting import (
    META_LIKE,
    PARAGRAPHS,
    FitFacts,
    _numbered_lines,
    layout_fits,
    one_paragraph,
)
from mosaic_it.method.layout import label_styles, plain_layout
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.records import Numbering

from ..conftest import REAL_DATA

MULTILINGUAL = Path(__file__).resolve().parents[1] / "data" / "multilingual.json"

# label heads and tails of every kind, some longer than the lines numbering_fits cuts
LONG_LABEL = "Instruction number {n} of the long headed list that goes on"


def texts(rnd: random.Random, styles: list[tuple[str, str]]) -> str:
    """A text whose lines begin like labels of random styles, lists, numbers and blank lines."""
    lines = []
    for _ in range(rnd.randint(1, 6)):
        kind = rnd.randrange(7)
        n = rnd.randint(1, 120)
        if kind == 0:
            label, punct = rnd.choice(styles)
            lines.append(label.format(n=n) + punct + rnd.choice([" eat", "\tx", "", "y", "."]))
        elif kind == 1:
            lines.append(f"{n}. Step {n + 1}: mix")
        elif kind == 2:
            lines.append("")  # a blank line
        elif kind == 3:
            lines.append(" " * rnd.randint(0, 30) + f"{n}) item " + "z" * rnd.randint(0, 60))
        elif kind == 4:
            lines.append("word " * rnd.randint(0, 12) + str(n))
        elif kind == 5:
            lines.append(rnd.choice(["  \t", "### ", "**", "Task", "Part ", "#"]) + str(n))
        else:
            lines.append("plain words only")
    return "\n".join(lines)


def test_facts_give_the_verdict_of_the_texts_for_every_label_style(tmp_path):
    path = tmp_path / "long.json"
    default = load_rule_pack()
    labels = [*default.layout["labels"], LONG_LABEL]
    # a punctuation long enough that the style is read on whole lines, not cut ones
    punctuation = [*default.layout["label_punctuation"], "." * 31]
    path.write_text(
        json.dumps(
            {
                "extends": "default",
                "name": "long-labels",
                "format": {"labels": labels, "label_punctuation": punctuation},
            }
        )
    )
    pack = load_rule_pack(path)
    styles = label_styles(pack)
    assert len(styles) == len(labels) * len(punctuation)
    facts = FitFacts(pack)
    rnd = random.Random(7)
    records = [(texts(rnd, styles), texts(rnd, styles)) for _ in range(400)]
    for index, (prompt, output) in enumerate(records):
        facts.note(index, facts.facts_of(prompt, output))
    plain = plain_layout(pack)
    layouts = [plain] + [
        replace(plain, numbering=Numbering(label, punct, newline))
        for label, punct in styles
        for newline in (False, True)
    ]
    clashes = 0
    for layout in layouts:
        need_one, need_many, test_texts = facts.needs(layout)
        assert not test_texts  # every style of the pack has its facts
        for index, (prompt, output) in enumerate(records):
            noted = facts.kinds[facts.codes[index]]
            for many, need in ((False, need_one), (True, need_many)):
                fits = layout_fits(layout, [prompt], [output], many=many)
                assert fits == (not noted & need), (layout.numbering, prompt, output, many)
                clashes += not fits
    assert clashes > 1000  # the texts do rule layouts out, every way


def test_facts_not_noted_read_as_unknown_and_other_styles_are_tested(pack):
    facts = FitFacts(pack)
    facts.note(3, facts.facts_of("Say hi", "1. hi"))
    facts.cover(6)
    assert [facts.kinds[c] == facts.unknown for c in facts.codes] == [1, 1, 1, 0, 1, 1]
    numbered = replace(plain_layout(pack), numbering=Numbering("{n}", ".", False))
    need_one, need_many, _ = facts.needs(numbered)
    assert facts.kinds[facts.codes[3]] & need_one  # "1. hi" begins like "{n}."
    assert facts.unknown & need_one and facts.unknown & need_many
    # unnumbered: a meta-like instruction never, even alone; a blank line only among others
    assert facts.needs(plain_layout(pack)) == (META_LIKE, PARAGRAPHS | META_LIKE, False)
    other = replace(numbered, numbering=Numbering("Q{n}", ".", False))
    assert facts.needs(other)[2]  # a style the pack does not hold: tested on the texts


def test_grouping_on_noted_facts_gives_the_samples_of_testing_every_text(tokenizer):
    """The same samples whether grouping reads the noted facts or tests every record's texts
    (every record's facts forgotten, so the layout is tested on them as it grows)."""
    records = list(read_records(str(MULTILINGUAL)))
    if REAL_DATA.exists():
        records += read_records(str(REAL_DATA))
    runs = []
    for forget in (False, True):
        m = Mosaicker(MosaicConfig(max_tokens=1024), tokenizer=tokenizer)
        prepared = m.prepare(records)
        if forget:
            facts = prepared.grouper.facts
            facts.codes[:] = bytes([len(facts.kinds) - 1]) * len(facts.codes)
        runs.append([s.to_record() for e in range(2) for s in m.run_epoch(prepared, e)])
    assert runs[0] == runs[1]


def test_numbered_lines_are_the_lines_the_expression_finds():
    """The lines a label could be read in, found by splitting the text, are those the
    expression that defines them finds (a digit among a line's first 25 characters, the line
    cut 40 characters past it), Unicode digits, carriage returns and long lines included."""
    expression = re.compile(r"^[^\n\d]{0,24}\d[^\n]{0,40}", re.MULTILINE)
    rnd = random.Random(3)
    alphabet = ["a", "b", " ", "1", "7", "\n", "\r", "\t", "٣", "²", "x" * 30, ".", "#", "é"]
    for _ in range(5000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        assert _numbered_lines(text) == tuple(expression.findall(text)), repr(text)
        assert one_paragraph(text) == (re.search(r"\n[ \t]*(?:\n|$)|^[ \t]*\n", text) is None)
