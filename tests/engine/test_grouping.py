"""The engine: exact budget, every record once per epoch, rejects, determinism, rates."""

from collections import Counter

import pytest

from mosaic_it import MosaicConfig, Mosaicker, mosaic
from mosaic_it.budget.templates import get_template

from ..conftest import make_records


def run(records, **options):
    m = Mosaicker(MosaicConfig(**options))
    samples = list(m.run(records))
    return samples, m.summary


@pytest.mark.parametrize("template", ["vicuna", "none", "reference"])
@pytest.mark.parametrize("max_tokens", [300, 1024])
def test_every_sample_fits_the_budget_exactly(tokenizer, template, max_tokens):
    records = make_records(300, seed=1)
    samples, summary = run(records, epochs=2, max_tokens=max_tokens, template=template)
    t = get_template(template)
    for s in samples:
        exact = t.count(tokenizer, s.instruction, s.output)
        assert exact == s.spec.tokens <= max_tokens
        if template == "reference":  # the reference scripts' own test, on the joined text
            assert s.spec.tokens == tokenizer.count(s.instruction + s.output) < max_tokens
    assert summary.max_sample_tokens <= max_tokens


def test_vicuna_count_is_the_fastchat_sequence(tokenizer):
    t = get_template("vicuna")
    text = t.render("Hi", "Hello.")
    assert text == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions. USER: Hi "
        "ASSISTANT: Hello."
    )
    assert t.count(tokenizer, "Hi", "Hello.") == tokenizer.count(text) + 2  # <s> and </s>


def test_each_record_appears_once_per_epoch_apart_from_rejects():
    records = make_records(400, seed=2, long_every=37)
    samples, summary = run(records, epochs=3, max_tokens=1024)
    rejected = {r["id"] for r in summary.rejected}
    assert rejected and all(r["reason"] == "too_long" for r in summary.rejected)
    assert all(r["tokens"] > 1024 for r in summary.rejected)
    seen = Counter(i for s in samples for i in s.spec.sources)
    for rec in records:
        assert seen[rec.id] == (0 if rec.id in rejected else 3)
    for epoch in range(3):
        ids = [i for s in samples if s.spec.epoch == epoch for i in s.spec.sources]
        assert len(ids) == len(set(ids)) == len(records) - len(rejected)


def test_same_seed_same_samples_and_other_seed_differs():
    records = make_records(200, seed=3)
    a = [s.to_record() for s in mosaic(records, epochs=2, seed=11)]
    b = [s.to_record() for s in mosaic(records, epochs=2, seed=11)]
    c = [s.to_record() for s in mosaic(records, epochs=2, seed=12)]
    assert a == b and a != c


def test_samples_grow_while_they_fit(tokenizer):
    """A sample stopped short of its k is full: its next record would not have fit."""
    records = make_records(600, seed=4, max_words=12)
    samples, _ = run(records, epochs=1, wrap_mode="max_length", max_tokens=4096)
    assert max(s.spec.instructions for s in samples) > 60  # no cap on k (FIX rules included)
    assert all(s.spec.tokens <= 4096 for s in samples)
    # with every record offered, samples are filled: each but the last is near the budget
    # (maskout samples less so: their skipped answers are not in the sequence)
    assert all(s.spec.tokens > 4096 - 150 for s in samples[:-1] if s.spec.strategy != "maskout")


def test_one_instruction_samples_get_format_only():
    records = make_records(100, seed=5)
    samples, _ = run(records, epochs=2, max_instructions=1)
    assert {s.spec.instructions for s in samples} == {1}
    assert {s.spec.strategy for s in samples} == {"format"}


def test_strategy_subset_is_respected():
    records = make_records(200, seed=6)
    samples, summary = run(records, epochs=2, strategies=("format", "permute"))
    assert "maskout" not in summary.strategies and summary.strategies["permute"] > 0
    samples, summary = run(records, epochs=2, strategies=("format",))
    assert set(summary.strategies) == {"format"}


def test_strategy_and_format_rates():
    """Equal thirds of strategies among multi-instruction samples; tags 1/2, generic 1/4,
    plain 1/4."""
    records = make_records(3000, seed=7)
    samples, summary = run(records, epochs=3, max_tokens=4096)
    multi = [s for s in samples if s.spec.instructions > 1]
    strategies = Counter(s.spec.strategy for s in multi)
    n = len(multi)
    # rules that cannot apply fall back to format only, so format is a little above 1/3
    assert strategies["permute"] / n == pytest.approx(1 / 3, abs=0.04)
    assert strategies["maskout"] / n == pytest.approx(1 / 3, abs=0.04)
    formats = Counter(s.spec.layout_kind for s in samples)
    assert formats["tags"] / len(samples) == pytest.approx(0.5, abs=0.04)
    assert formats["generic"] / len(samples) == pytest.approx(0.25, abs=0.04)
    unnumbered = sum(s.spec.numbering is None for s in samples) / len(samples)
    assert unnumbered == pytest.approx(0.1, abs=0.03)


def test_spec_re_renders_the_sample(pack):
    """The spec holds every choice: rendering it again gives the same text."""
    from mosaic_it.method.layout import Layout, render_instruction, render_response

    records = {r.id: r for r in make_records(150, seed=8)}
    for s in mosaic(list(records.values()), epochs=1, seed=5):
        spec = s.spec
        group = [records[i] for i in spec.sources]
        layout = Layout(
            spec.layout_kind,
            spec.numbering,
            spec.tags,
            "",
            spec.meta_position == "after",
            "\n\n" if "\n\n".join(r.prompt for r in group) in s.instruction else "\n",
            "",
            pack.layout["response_separator"],
        )
        assert render_response(layout, [r.output for r in group], spec.answer_order) == s.output
        assert set(spec.answer_order) | set(spec.masked) == set(range(1, len(group) + 1)) or (
            layout.numbering is not None
        )
        assert not s.instruction.startswith("\n") and not s.instruction.endswith("\n\n\n")
        head, tail = spec.meta_parts()
        assert " ".join(p for p in (head, tail) if p) == spec.meta
        assert s.instruction.startswith(head) and s.instruction.endswith(tail)
        assert spec.meta_position == (
            ("both" if tail else "before") if head else ("after" if tail else None)
        )
        _ = render_instruction


def test_text_passes_through_unchanged():
    from mosaic_it import Record

    odd = [
        Record("a", "Format {name} with {{braces}}", 'print(f"{x}\\n") \\ C:\\Users\\x'),
        Record("b", "Translate 😀 🚀", "מה שלומך؟ مرحبا"),
        Record("c", "用中文回答", "好的，这是答案。"),
        Record("d", "Zürich café naïve", "a < b && c > d", input="x\u200dy\u0301"),
    ]
    samples = list(mosaic(odd * 3, epochs=2, seed=1))
    body = "\n".join(s.instruction + s.output for s in samples)
    for r in odd:
        assert r.instruction in body and r.output in body and (r.input in body)


def test_records_group_only_with_records_of_the_same_system_prompt(tokenizer):
    from dataclasses import replace

    records = [
        replace(r, system=("You are terse." if i % 3 == 0 else ""))
        for i, r in enumerate(make_records(300, seed=9, max_words=30))
    ]
    by_id = {r.id: r for r in records}
    samples, summary = run(records, epochs=2)
    for s in samples:
        systems = {by_id[i].system for i in s.spec.sources}
        assert len(systems) == 1 and s.system == systems.pop()
    seen = Counter(i for s in samples for i in s.spec.sources)
    assert set(seen.values()) == {2} and len(seen) == 300
    assert any(s.to_record().get("system") == "You are terse." for s in samples)


def test_spooled_records_give_the_same_samples():
    """Past the spool threshold records live on disk; the samples must not change."""
    records = make_records(300, seed=10)
    in_memory = [s.to_record() for s in Mosaicker(MosaicConfig(epochs=2)).run(records)]
    spooled = Mosaicker(MosaicConfig(epochs=2), spool_threshold=1000)
    assert [s.to_record() for s in spooled.run(records)] == in_memory
    from mosaic_it.engine.store import DiskStore

    prepared = spooled.prepare(records)
    assert isinstance(prepared.grouper.records, DiskStore) and len(prepared.grouper.records) == 300


def test_an_epochs_counters_are_taken_out_once():
    from mosaic_it.engine.admission import GroupingStats

    m = Mosaicker(MosaicConfig(epochs=2, max_tokens=600))
    prepared = m.prepare(make_records(150, seed=9))
    grouper = prepared.grouper
    list(grouper.group_epoch(prepared.admitted, 1))  # counters gathered before the mark
    before = GroupingStats(**vars(grouper.stats))
    assert before.exact_checks > 0
    mark = grouper.mark()
    samples = list(grouper.group_epoch(prepared.admitted, 0))
    taken, late = grouper.take_since(mark)
    assert samples and taken.exact_checks > 0 and late == []
    assert grouper.stats == before  # what is left is as it was at the mark
    # the same epoch again gathers the same counters: they depend on the epoch alone
    mark = grouper.mark()
    assert len(list(grouper.group_epoch(prepared.admitted, 0))) == len(samples)
    assert grouper.take_since(mark)[0] == taken
