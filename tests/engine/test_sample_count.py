"""Exact sample counts (engine/sample_count.py): folded from the records' summaries on the
parts compose laid a sample out in, or the sample tokenized whole, always what the run counted."""

from mosaic_it import load_tokenizer

from ..budget.test_counting import SAMPLE_TEXTS

TOK = load_tokenizer()


def mosaicked(records, **options):
    from mosaic_it import MosaicConfig, Mosaicker

    m = Mosaicker(MosaicConfig(epochs=1, special_tokens="keep", **options))
    return m, list(m.run(records))


def sample_counter(m, records):
    from mosaic_it.engine.sample_count import SampleCounter

    counter = SampleCounter(m.tokenizer, m.template)
    texts = [t for r in records for t in (r.prompt, r.output)]
    prompts, outputs = counter.take_counts(counter.count_texts(texts))
    assert prompts == m.tokenizer.count_batch([r.prompt for r in records])
    assert outputs == m.tokenizer.count_batch([r.output for r in records])
    return counter


def test_sample_counts_are_exact_folded_or_whole():
    from dataclasses import replace

    from ..conftest import make_records

    records = make_records(60, seed=11)
    records[7] = replace(records[7], system="You answer briefly.")
    for template in ("vicuna", "chatml", "none"):
        m, samples = mosaicked(records, max_tokens=700, template=template)
        index = {r.id: i for i, r in enumerate(records)}
        pairs = [(s, [index[i] for i in s.spec.sources]) for s in samples]
        truth = [s.spec.tokens for s in samples]
        counter = sample_counter(m, records)
        assert counter.folds and "folded from word counts" in counter.counting
        assert [counter.exact(s, g) for s, g in pairs] == truth
        assert counter.exact_many(pairs) == truth
        # a sample without the parts compose laid it out in is laid out again from its spec
        assert counter.exact_many([(replace(s, parts=None), g) for s, g in pairs]) == truth
        counter.compact()  # summaries in arrays (as after spooling): the same counts
        assert counter.exact_many(pairs) == truth
        counter.stop_folding("asked to")
        assert not counter.folds and counter.counting.endswith("tokenized whole (asked to)")
        assert counter.exact_many(pairs) == truth


def test_special_token_text_turns_folding_off_and_counts_stay_exact():
    import copy
    from dataclasses import replace

    from mosaic_it import MosaicConfig, Mosaicker
    from mosaic_it.budget.tokenizer import Tokenizer

    from ..conftest import make_records

    backend = copy.deepcopy(TOK.backend)
    backend.encode_special_tokens = False  # "</s>" in a text is read as the special token
    tok = Tokenizer("bundled, specials matched", TOK.bos_token, TOK.eos_token, backend)
    records = make_records(20, seed=12)
    records[3] = replace(records[3], output=records[3].output + " </s> then more")
    m = Mosaicker(MosaicConfig(epochs=1, special_tokens="keep", max_tokens=800), tokenizer=tok)
    samples = list(m.run(records))
    counter = sample_counter(m, records)
    assert not counter.folds and "special-token strings" in counter.counting
    index = {r.id: i for i, r in enumerate(records)}
    pairs = [(s, [index[i] for i in s.spec.sources]) for s in samples]
    assert counter.exact_many(pairs) == [s.spec.tokens for s in samples]


def test_counting_texts_unfolded_gives_the_same_counts():
    from mosaic_it.budget.templates import get_template
    from mosaic_it.engine.sample_count import SampleCounter

    counter = SampleCounter(TOK, get_template("vicuna"))
    folded = counter.count_texts(SAMPLE_TEXTS)
    whole = counter.count_texts(SAMPLE_TEXTS, fold=False)
    assert folded.numbers == whole.numbers == TOK.count_batch(SAMPLE_TEXTS)
    assert folded.summaries is not None and whole.summaries is None and whole.learned == []
    assert counter.take_counts(whole) == (whole.numbers[0::2], whole.numbers[1::2])
