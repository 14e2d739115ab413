"""The method's checks on the real Alpaca sample (../shared/data; skipped where it is absent)."""

import json
from collections import Counter

import pytest

from mosaic_it import MosaicConfig, Mosaicker, read_records
from mosaic_it.budget.templates import get_template

from ..conftest import real_data_or_skip


@pytest.fixture(scope="module")
def real_records():
    return list(read_records(real_data_or_skip()))


@pytest.mark.parametrize("template,max_tokens", [("vicuna", 2048), ("none", 2000)])
def test_real_data_budget_ids_and_determinism(real_records, tokenizer, template, max_tokens):
    config = MosaicConfig(template=template, max_tokens=max_tokens, seed=3)
    samples = list(Mosaicker(config).run(real_records))
    t = get_template(template)
    counts = t.count_batch(tokenizer, [(s.instruction, s.output) for s in samples])
    assert all(c == s.spec.tokens <= max_tokens for c, s in zip(counts, samples))
    seen = Counter(i for s in samples for i in s.spec.sources)
    assert len(seen) == len(real_records) and set(seen.values()) == {4}
    again = [s.to_record() for s in Mosaicker(config).run(real_records)]
    assert json.dumps(again) == json.dumps([s.to_record() for s in samples])


def test_real_data_instructions_per_sample_match_the_reference(real_records):
    """Reference settings (uniform, M=10, 2000 tokens of instruction + response): the reference
    implementation wrote 5.27 instructions per sample on this data repeated to Alpaca's size."""
    means = []
    for seed in range(4):
        m = Mosaicker(MosaicConfig(template="none", max_tokens=2000, seed=seed))
        list(m.run(real_records))
        means.append(m.summary.mean_instructions)
    mean = sum(means) / len(means)
    # this tokenizer counts ~4% fewer tokens than Llama-2's, so the budget binds a little less
    assert 5.15 <= mean <= 5.55, means
