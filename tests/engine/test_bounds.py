"""Token bookkeeping and admission: the bounds hold the exact count, admission agrees with it."""

from dataclasses import replace

import pytest

from mosaic_it import MosaicConfig, Mosaicker
from mosaic_it.budget.templates import get_template
from mosaic_it.engine.admission import Admission, GroupingStats
from mosaic_it.engine.bounds import Counts, TokenBounds, pack_texts
from mosaic_it.method.compose import SamplePlan, compose
from mosaic_it.method.layout import plain_layout

from ..conftest import make_records


def alone_exact(tokenizer, pack, template, record):
    """A record's exact count alone in the smallest layout, by tokenizing the sample."""
    layout = plain_layout(pack)
    plan = SamplePlan((), layout, "format")
    sample = compose(pack, plan, [record], 0, layout=layout, template=template.name)
    return template.count(tokenizer, sample.instruction, sample.output, sample.system)


def counted(tokenizer, records):
    counts = Counts()
    counts.prompt.extend(tokenizer.count_batch([r.prompt for r in records]))
    counts.output.extend(tokenizer.count_batch([r.output for r in records]))
    return counts


@pytest.mark.parametrize("name", ["vicuna", "chatml", "none"])
def test_the_bounds_of_a_record_alone_hold_its_exact_count(tokenizer, pack, name):
    template = get_template(name)
    records = make_records(40, seed=21)
    records[5] = replace(records[5], system="Answer in French.")
    bounds = TokenBounds(
        counted(tokenizer, records), pack=pack, tokenizer=tokenizer, template=template
    )
    for i, r in enumerate(records):
        low, high = bounds.single(i, r.system)
        assert low <= alone_exact(tokenizer, pack, template, r) <= high


def test_small_texts_are_counted_once_and_the_pack_is_listed(tokenizer, pack):
    bounds = TokenBounds(Counts(), pack=pack, tokenizer=tokenizer, template=get_template("vicuna"))
    assert bounds.count("") == 0
    assert bounds.count("[[A_START]]") == tokenizer.count("[[A_START]]")
    texts = pack_texts(pack)
    assert set(pack.permute["tie_break"]) <= set(texts)
    assert all(any(p in t for t in texts) for p in pack.layout["generic_phrasings"])
    # no rule meta-instruction costs more than the bound grouping adds for one
    assert bounds.rule_meta_max >= max(bounds.count(t) for t in texts)


def test_admission_agrees_with_the_exact_count_at_the_edge(tokenizer, pack):
    template = get_template("vicuna")
    records = make_records(12, seed=22)
    bounds = TokenBounds(
        counted(tokenizer, records), pack=pack, tokenizer=tokenizer, template=template
    )
    m = Mosaicker(MosaicConfig(epochs=1))
    counter = m.prepare(records).grouper.counter  # the records' summaries, counted
    for i, r in enumerate(records):
        exact = alone_exact(tokenizer, pack, template, r)
        for budget, fits in ((exact, True), (exact - 1, False)):
            stats = GroupingStats()
            admission = Admission(bounds, counter, stats, pack=pack, budget=budget)
            ok, tokens = admission.fits_alone(i, r, admission.facts.facts_of(r.prompt, r.output))
            assert ok == fits
            assert tokens == exact and stats.exact_checks == 1  # decided near the edge
        far = Admission(bounds, counter, GroupingStats(), pack=pack, budget=exact + 100)
        facts = far.facts.facts_of(r.prompt, r.output)
        assert far.fits_alone(i, r, facts) == (True, None) and far.stats.exact_checks == 0
