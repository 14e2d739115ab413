"""Summaries made together (a batch of samples' new texts) equal summaries made one by one."""

import pytest

from mosaic_it import load_tokenizer
from mosaic_it.budget.counting import WordCounter
from mosaic_it.budget.pretokens import PieceCounter

from ..chat_fixtures import llama3_dir, qwen_dir, smollm2_gguf  # noqa: F401 - fixtures
from ..hypothesis_or_skip import given, settings, st
from .test_pretokens import ANY, TEXT, family_tokenizer

# with and without a pre-tokenizer (the latter counted in rounds of batched tokenizer calls)
FAMILIES = ["smollm2", "spaced", "gemma3"]


@pytest.fixture(scope="module", params=FAMILIES)
def tokenizer(request, qwen_dir, llama3_dir, smollm2_gguf):
    return family_tokenizer(request.param, qwen_dir, llama3_dir, smollm2_gguf)


@settings(max_examples=40, deadline=None, suppress_health_check=[ANY])
@given(st.lists(TEXT, max_size=12))
def test_pieces_summarised_together_as_one_by_one(tokenizer, texts):
    one_by_one = PieceCounter(tokenizer)
    together = PieceCounter(tokenizer)  # fresh: every text it needs is counted in a batch
    assert together.summarize_many(texts) == [one_by_one.summarize(t) for t in texts]
    together.glue_many(texts)
    assert [together.glue(t) for t in texts] == [one_by_one.summarize(t) for t in texts]


def test_words_glued_together_as_one_by_one():
    tokenizer = load_tokenizer()
    texts = ["Answer the 3 tasks in order.", " (2) ", "", "\n\n", "Answer the 3 tasks in order."]
    one_by_one, together = WordCounter(tokenizer), WordCounter(tokenizer)
    together.glue_many(texts)
    assert [together.glue(t) for t in texts] == [one_by_one.summarize(t) for t in texts]
