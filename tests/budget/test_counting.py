"""Word-local counting: folded counts equal tokenizing the whole text."""

import json

from mosaic_it import load_tokenizer
from mosaic_it.budget.counting import WORD, WordCounter
from mosaic_it.budget.word_local import supports

from ..chat_fixtures import llama3_dir, qwen_dir  # noqa: F401 - fixtures
from ..hypothesis_or_skip import given, settings, st

TOK = load_tokenizer()
WC = WordCounter(TOK)
PIECES = [
    "a",
    "Give",
    " ",
    "  ",
    "\n",
    "\n\n",
    "(1)",
    "[START]",
    "**",
    "]",
    ":",
    ".",
    "é",
    "😀",
    "中文",
    "\t",
    "\r",
    "1.",
    "x y",
    " z",
    "▁",
    "ab  \n  c",
    "\r\n",
    "\u200d",
    "'s",
    "<s>",
    "{n}",
    "\\",
]


def test_the_bundled_tokenizer_is_word_local():
    assert supports(TOK)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=6).map("".join),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_fold_equals_whole_text_count(parts, known):
    text = "".join(parts)
    if not text:
        return
    summaries = [WC.glue(" ")] + [
        WC.summarize(p, TOK.count(p) if k and p else None)
        for p, k in zip(parts, known + [False] * 6)
    ]
    assert WC.fold(summaries) == TOK.count(text)


def test_real_records_fold_exactly():
    import json

    from ..conftest import real_data_or_skip

    rows = json.loads(real_data_or_skip().read_text())[:300]
    texts = [r["instruction"] + ("\n" + r["input"] if r["input"] else "") for r in rows]
    texts += [r["output"] for r in rows]
    counts, sums = WC.count_texts(texts)
    assert counts == TOK.count_batch(texts)
    glue = ["\n\n", "(3) ", "[START]", "[END]", "\n"]
    for i in range(0, len(texts) - 3, 3):
        parts = [
            glue[i % 5],
            texts[i],
            glue[(i + 1) % 5],
            texts[i + 1],
            glue[(i + 2) % 5],
            texts[i + 2],
        ]
        seq = [WC.glue(" ")] + [
            WC.glue(p) if j % 2 == 0 else sums[i + j // 2] for j, p in enumerate(parts)
        ]
        assert WC.fold(seq) == TOK.count("".join(parts))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=8).map("".join),
        min_size=1,
        max_size=8,
    )
)
def test_counts_from_words_equal_tokenizing_each_text(texts):
    wc = WordCounter(TOK)  # a fresh cache: every word is counted from scratch
    standalone, summaries = wc.count_texts(texts)
    assert standalone == TOK.count_batch(texts)
    # again, now from the pieces kept, and texts made of the same pieces in another order
    assert wc.count_texts(texts) == (standalone, summaries)
    mixed = [" ".join(t.split(" ")[::-1]) for t in texts] + [" ".join(texts)]
    assert wc.count_texts(mixed)[0] == TOK.count_batch(mixed)
    for text, summary in zip(texts, summaries):
        assert summary == WC.summarize(text, TOK.count(text) if text else None)
    # in context (after a text that ends in a letter) the summary folds exactly too; a
    # leading " " stands for the "▁" the tokenizer prepends to the whole text
    for text, summary in zip(texts, summaries):
        assert WC.fold([WC.glue(" "), WC.glue("x"), summary]) == TOK.count("x" + text)


def test_counts_from_words_survive_a_cache_reset(monkeypatch):
    import mosaic_it.budget.counting as counting

    monkeypatch.setattr(counting, "MAX_WORDS", 5)
    wc = WordCounter(TOK)
    texts = ["alpha beta gamma delta", "epsilon zeta eta theta", "\n iota  kappa ", "alpha"]
    for _ in range(3):  # every call finds the cache over its bound and starts a new one
        assert wc.count_texts(texts)[0] == TOK.count_batch(texts)


def test_a_seam_no_piece_spans_splits_the_word_there():
    """The shortcut that counts a seam word from its halves, checked against the tokenizer on
    the words a run meets at seams: tags, labels and the edges of real answers."""
    import itertools
    import random

    from mosaic_it import load_rule_pack

    fmt = load_rule_pack().layout
    tags = [
        o + w + c for o, c in fmt["tag_brackets"] for pair in fmt["tag_words"][:4] for w in pair
    ]
    edges = [
        "The",
        "1.",
        "Yes,",
        "done.",
        "(a)",
        "é",
        "中文",
        "x",
        "**Note",
        '"Hi"',
        "😀",
        "C++",
        "#",
        "$5",
        "]",
        "[",
        "<br>",
        "'s",
        "`code`",
        "end.)",
    ]
    wc = WordCounter(TOK)
    assert wc._spans  # the bundled tokenizer takes the shortcut
    pairs = list(itertools.product(tags + edges, repeat=2))
    random.Random(0).shuffle(pairs)
    checked = 0
    for left, right in pairs[:3000]:
        if not wc.cuts_at(left + right, len(left)):
            continue
        assert wc.fold([wc.glue(left), wc.glue(right)]) == wc.word(left) + wc.word(right)
        nl = TOK.count("\n")  # words are counted after a newline, which no token crosses
        whole = TOK.count("\n" + left + right) - nl
        assert whole == (TOK.count("\n" + left) - nl) + (TOK.count("\n" + right) - nl)
        checked += 1
    assert checked > 1000


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["The", "done.", "x", '"Hi"', "end.)", "3", "é", "中文", "😀", " "])
        | st.text(max_size=5),
        min_size=1,
        max_size=4,
    ).map("".join),
    st.sampled_from(["<#A_END#>", "::OMEGA::", "((RES_END))", "[<close>]", "<<eor>>", "**"]),
    st.sampled_from(["**alpha**", "<[start]>", "--OPEN--", "<|ANS_BEGIN|>", "[", "("]),
)
def test_a_seam_word_is_counted_from_the_span_around_the_seam(answer, end, begin):
    """Folding an answer between tags counts again only the span between the nearest cuts
    around each seam (which recurs), never the seam word itself, and the count is exact."""
    wc = WordCounter(TOK)  # a fresh cache: every span is counted from scratch
    parts = [begin, answer, end, "\n"]  # after the lead, which stands for the prepended "▁"
    assert wc.fold([wc.glue(" ")] + [wc.glue(p) for p in parts]) == TOK.count("".join(parts))
    for left, right in ((begin, answer), (answer, end)):
        if left and right and WORD.findall(left)[-1:] and WORD.findall(right)[:1]:
            tail, head = WORD.findall(left)[-1], WORD.findall(right)[0]
            if head[0] not in " \n" and tail[-1] != "\n" and len(tail + head) > 12:
                assert tail + head not in wc._words  # only the span was counted
    # the same seams again, now from the spans counted: still exact
    again = [answer, end, "x", begin, answer, end]
    assert wc.fold([wc.glue(" ")] + [wc.glue(p) for p in again]) == TOK.count("".join(again))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            PIECES
            + [
                "(|RESPONSE_BEGIN|)",
                "++OUTPUT++",
                "|2->1->3|.",
                "[10].",
                "e.g.,",
                "https://x.org/a?b=1",
            ]
        )
        | st.text(max_size=8),
        min_size=1,
        max_size=6,
    ).map("".join)
)
def test_a_word_cut_where_no_piece_spans_counts_as_its_parts(text):
    nl = TOK.count("\n")
    for w in WORD.findall(text.replace("▁", " ")):
        parts = WC.split(w)
        assert "".join(parts) == w
        assert sum(TOK.count("\n" + p) - nl for p in parts) == TOK.count("\n" + w) - nl


def test_tokenizers_that_are_not_word_local_are_refused(qwen_dir, llama3_dir):
    import tokenizers

    from mosaic_it.budget.tokenizer import Tokenizer, load_tokenizer

    # byte-level BPE with a regex pre-tokenizer
    assert not supports(load_tokenizer(qwen_dir))
    assert not supports(load_tokenizer(llama3_dir))

    def variant(**model_options):
        config = json.loads(TOK.backend.to_str())
        config["model"].update(model_options)
        backend = tokenizers.Tokenizer.from_str(json.dumps(config))
        return Tokenizer("variant", TOK.bos_token, TOK.eos_token, backend)

    assert supports(variant())
    assert not supports(variant(dropout=0.1))
    assert not supports(variant(end_of_word_suffix="</w>"))
    # unknown characters side by side become one token: words are never cut
    fused = WordCounter(variant(byte_fallback=False))
    assert fused._spans is None and fused.split("a\u0fffb") == ["a\u0fffb"]


# ---------------------------------------------------------------------- the folding interface

SAMPLE_TEXTS = [
    "Give three tips for staying healthy.",
    "1. Eat well.\n2. Sleep.",
    "  spaced  out  ",
    "中文 and é",
    "<|im_start|>user",
    "\n\nDone.",
]


def folding_counters(qwen_dir):
    from mosaic_it.budget.pretokens import PieceCounter
    from mosaic_it.budget.tokenizer import load_tokenizer

    qwen = load_tokenizer(qwen_dir)
    return [(WordCounter(TOK), TOK), (PieceCounter(qwen), qwen)]


def test_both_counters_fold_many_samples_exactly(qwen_dir):
    from mosaic_it.budget.folding import SharedCache

    for counter, tok in folding_counters(qwen_dir):
        counts, summaries = counter.count_texts(SAMPLE_TEXTS)
        assert counts == tok.count_batch(SAMPLE_TEXTS)
        samples, whole = [], []
        for i in range(len(SAMPLE_TEXTS) - 1):
            # two sequences a sample: a text after a label, and two texts joined by a newline
            first = [counter.glue(counter.lead + f"({i}) "), summaries[i]]
            second = [counter.glue(counter.lead), summaries[i], counter.glue("\n")]
            second.append(summaries[i + 1])
            samples.append([first, second])
            text = SAMPLE_TEXTS[i]
            whole.append(tok.count(f"({i}) " + text) + tok.count(text + "\n" + SAMPLE_TEXTS[i + 1]))
        assert counter.fold_many(samples) == whole
        assert [sum(map(counter.fold, s)) for s in samples] == whole
        # only the word counter hands a worker's counts back; the other keeps its caches
        assert isinstance(counter, SharedCache) == (counter.shape == "issb")


def test_the_piece_counter_has_no_methods_it_does_not_use(qwen_dir):
    _, (pieces, _) = folding_counters(qwen_dir)
    for name in ("learn", "prime", "settle", "fold_known", "journal"):
        assert not hasattr(pieces, name)


def test_a_workers_journal_teaches_the_parent_every_word_it_counted():
    texts = ["alpha beta gamma", "delta\n\nepsilon  zeta", "alpha omega"]
    worker, parent = WordCounter(TOK), WordCounter(TOK)
    journal: list[tuple[str, int]] = []
    counts, summaries = worker.count_texts(texts, journal)
    assert journal and all(isinstance(w, str) and n >= 0 for w, n in journal)
    parent.learn(journal)
    again: list[tuple[str, int]] = []
    assert parent.count_texts(texts, again) == (counts, summaries)
    assert again == []  # nothing left to count: the worker's words were enough
