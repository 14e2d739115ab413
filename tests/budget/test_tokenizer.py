"""Tests for mosaic_it.budget.tokenizer.

The core guarantee: the bundled tokenizer, built from the SentencePiece .model file
without the sentencepiece package, encodes exactly like sentencepiece itself.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import tokenizers
from tokenizers import AddedToken, processors
from tokenizers.models import BPE

from mosaic_it.budget import sentencepiece_bpe as spbpe
from mosaic_it.budget import tokenizer as tokmod
from mosaic_it.budget.tokenizer import DEFAULT_TOKENIZER, Tokenizer, TokenizerError, load_tokenizer

from ..conftest import REAL_DATA, needs
from ..hypothesis_or_skip import HealthCheck, given, settings, st

# the model the shipped tokenizer.json is converted from: in the repository, not in the wheel
MODEL_FILE = Path(__file__).resolve().parents[1] / "data" / "tokenizer" / "tokenizer.model.v1"
ALPACA_DEMO = REAL_DATA  # real data, not part of the repo (tests/data_paths.py)


@pytest.fixture(scope="module")
def spm() -> Any:
    """The sentencepiece module: the reference these tests compare with (extra [test])."""
    return needs("sentencepiece")


@pytest.fixture(scope="module")
def sp(spm) -> Any:
    return spm.SentencePieceProcessor(model_file=str(MODEL_FILE))


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return load_tokenizer()


def _assert_same_ids(tok: Tokenizer, sp: Any, text: str) -> None:
    expected = sp.encode(text)
    got = tok.encode(text)
    assert got == expected, (
        f"{text!r}:\n  sentencepiece {sp.encode(text, out_type=str)}\n"
        f"  tokenizers    {[tok.backend.id_to_token(i) for i in got]}"
    )


# --------------------------------------------------------------------------------------
# Parity with sentencepiece
# --------------------------------------------------------------------------------------

LONG_TEXT = (
    "Mosaic-IT concatenates several instruction/response pairs into one sample.\n\n"
    "  def f(x):\n\treturn {'a': x\\2, \"b\": [1, 2, 3]}  \n"
    "Größe, naïve café, 中文文本, עברית, العربية, emoji 😀👍🏽👨‍👩‍👧, math ∑∫√, 3.14159e-10\n"
)
LONG_TEXT = (LONG_TEXT * (10_000 // len(LONG_TEXT) + 1))[:10_000]

PARITY_CASES = [
    "",
    " ",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "   three leading spaces",
    "trailing space ",
    "trailing spaces   ",
    "multiple   spaces    between     words",
    " " * 17,
    " " * 100,
    "a" + " " * 15 + "b" + " " * 16 + "c" + " " * 33 + "d",
    "tab\tseparated\tvalues",
    "\t\tindented with tabs",
    "line one\nline two\n",
    "paragraph one\n\nparagraph two\n\n\n\nafter blank lines",
    "\n",
    "\n\n\n",
    "windows\r\nline\r\nendings\r\n",
    " \n \t \r\n ",
    'int main() {\n    printf("%d\\n", x);\n    return 0;\n}',
    "path\\to\\file and C:\\Users\\me\\ and regex \\d+\\s*\\w+",
    "{{{nested}}} [[[brackets]]] ((parens)) <<<angle>>>",
    "0 1 12 123 1234 12345 3.14159 -42 1e10 0x1F 1,000,000 2024-01-01",
    "😀",
    "emoji 😀👍🏽 and more 🎉🚀 in text",
    "👨‍👩‍👧‍👦 family (zero-width joiners)",
    "a\u200db\u200cc\u200bd\ufeffe",  # ZWJ, ZWNJ, zero-width space, BOM
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐦𝐚𝐭𝐡 𝟙𝟚𝟛 and 𠀀𠀁 (supplementary planes)",
    "中文测试：机器学习是人工智能的一个分支。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 텍스트",
    "العربية لغة جميلة",
    "עברית היא שפה",
    "mixed English العربية and עברית inline",
    "Größe, naïve café, résumé, Ångström, Ærøskøbing, Łódź",
    "e\u0301 a\u0300 o\u0308 n\u0303 (combining marks)",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f",
    "Ελληνικά και кириллица",
    "\u00a0non-breaking\u00a0spaces\u2003and em\u3000spaces",
    "▁ the SentencePiece space symbol itself ▁▁",
    "<s> literal special tokens </s> <unk> <0x0A>",
    "<|im_start|>user\nhi<|im_end|>",
    "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌｗｉｄｔｈ ①②③ ﬁ ligature",
    "\x00\x01\x07\x1b control chars \x7f",
    "=" * 40 + "\n" + "-" * 40 + "\n" + "." * 40,
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ababababababa abab aba",
    "https://example.com/path?query=1&x=y#frag user@example.com",
    LONG_TEXT,
    " " * 5000 + "x",
]


@pytest.mark.parametrize("text", PARITY_CASES, ids=range(len(PARITY_CASES)))
def test_bundled_matches_sentencepiece(tok, sp, text):
    _assert_same_ids(tok, sp, text)
    assert tok.count(text) == len(sp.encode(text))


def test_batch_matches_single(tok, sp):
    assert tok.encode_batch(PARITY_CASES) == [sp.encode(t) for t in PARITY_CASES]
    assert tok.count_batch(PARITY_CASES) == [tok.count(t) for t in PARITY_CASES]
    assert tok.encode_batch([]) == [] and tok.count_batch([]) == []


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300))
def test_property_random_unicode(tok, sp, text):
    _assert_same_ids(tok, sp, text)


# Random unicode rarely produces the interesting cases (runs of spaces, words that merge
# into long pieces), so also draw from a vocabulary-like alphabet.
# fmt: off
_FRAGMENTS = st.sampled_from([
    " ", "  ", "    ", "\t", "\n", "\r\n", "the", "ing", "tion", "a", "e", "=", "-", "{", "}",
    "\\", "0", "9", ".", "é", "中", "😀", "▁", "<s>", "</s>", "\u200d", "\u0301",
])
# fmt: on


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.one_of(_FRAGMENTS, st.text(max_size=5)), max_size=40))
def test_property_fragments(tok, sp, parts):
    _assert_same_ids(tok, sp, "".join(parts))


def _alpaca_texts() -> list[str]:
    records = json.loads(ALPACA_DEMO.read_text(encoding="utf-8"))
    return [r[key] for r in records for key in ("instruction", "input", "output")]


@pytest.mark.skipif(not ALPACA_DEMO.is_file(), reason=f"{ALPACA_DEMO} not available")
def test_real_data_matches_sentencepiece(tok, sp, capsys):
    texts = _alpaca_texts()
    assert len(texts) == 3 * 999
    expected = [sp.encode(t) for t in texts]
    got = tok.encode_batch(texts)
    mismatched = [t for t, ids, ref in zip(texts, got, expected, strict=True) if ids != ref]
    assert not mismatched, f"{len(mismatched)} texts differ, first: {mismatched[0]!r}"
    assert tok.count_batch(texts) == [len(ids) for ids in expected]

    # Timings: reported, not asserted.
    start = time.perf_counter()
    model = spbpe.parse_sentencepiece_model(MODEL_FILE.read_bytes(), str(MODEL_FILE))
    spbpe.sentencepiece_bpe_to_tokenizers(model, str(MODEL_FILE))
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    total = sum(tok.count_batch(texts))
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    total_single = sum(tok.count(t) for t in texts)
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    sum(len(sp.encode(t)) for t in texts)
    sp_s = time.perf_counter() - start
    assert total == total_single
    with capsys.disabled():
        print(
            f"\n[tokenizer timings] build from .model: {build_s * 1000:.0f} ms; "
            f"999 records ({len(texts)} texts, {total} tokens): "
            f"count_batch {batch_s * 1000:.0f} ms, "
            f"count() loop {single_s * 1000:.0f} ms, sentencepiece {sp_s * 1000:.0f} ms"
        )


# --------------------------------------------------------------------------------------
# Conversion of other SentencePiece BPE configurations (models trained on the fly)
# --------------------------------------------------------------------------------------

_TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Instruction tuning teaches a language model to follow instructions.",
    "Mosaic-IT packs several instructions and responses into one training sample.",
    "Ｆｕｌｌｗｉｄｔｈ letters, ligatures like ﬁ, and  double  spaces  appear  here.",
    "def count(text):\n    return len(text.split())\n",
    "Numbers 123 456 7890 and symbols !@#$%^&*() are common too.",
] * 30

_PROBES = [
    "",
    " ",
    "   ",
    "  leading and trailing  ",
    "squeeze    these     spaces",
    "\t tab \n newline \r\n",
    "Ｆｕｌｌｗｉｄｔｈ ﬁ ① ｶﾀｶﾅ",
    "unseen characters: 中文 😀 ☃☃☃ ∑",
    "The quick brown fox",
    "x\u3000y\u00a0z",
]


@pytest.mark.parametrize("normalization", ["identity", "nmt_nfkc"])
@pytest.mark.parametrize("remove_extra_whitespaces", [True, False])
@pytest.mark.parametrize("add_dummy_prefix", [True, False])
@pytest.mark.parametrize("byte_fallback", [True, False])
def test_converted_bpe_variants_match_sentencepiece(
    normalization, remove_extra_whitespaces, add_dummy_prefix, byte_fallback, spm
):
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_TRAIN_TEXT),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=150 + (256 if byte_fallback else 0),  # + the <0x00>..<0xFF> pieces
        character_coverage=0.98,  # leave some characters out: exercises <unk> / bytes
        normalization_rule_name=normalization,
        remove_extra_whitespaces=remove_extra_whitespaces,
        add_dummy_prefix=add_dummy_prefix,
        byte_fallback=byte_fallback,
        bos_id=-1 if byte_fallback else 1,  # also check a model without BOS
        minloglevel=2,
    )
    data = buffer.getvalue()
    reference = spm.SentencePieceProcessor(model_proto=data)
    model = spbpe.parse_sentencepiece_model(data, "trained")
    assert model.remove_extra_whitespaces is remove_extra_whitespaces
    assert model.add_dummy_prefix is add_dummy_prefix
    assert model.byte_fallback is byte_fallback
    assert model.bos_id == reference.bos_id() and model.eos_id == reference.eos_id()
    backend = spbpe.sentencepiece_bpe_to_tokenizers(model, "trained")
    probes = _PROBES + _TRAIN_TEXT[:6]
    if normalization != "identity":
        # Multi-codepoint graphemes such as "\r\n" hit the known Precompiled difference,
        # pinned down by test_precompiled_charsmap_grapheme_difference below.
        probes = [text for text in probes if "\r\n" not in text]
    for text in probes:
        got = backend.encode(text, add_special_tokens=False)
        assert got.ids == reference.encode(text), (
            f"{text!r}: {reference.encode(text, out_type=str)} vs {got.tokens}"
        )


@pytest.mark.xfail(
    strict=True,
    reason="tokenizers' Precompiled normalizer rewrites whole grapheme clusters by their "
    "shortest matching prefix (and composes nothing across clusters of 6+ bytes), whereas "
    "sentencepiece rewrites longest matches anywhere; models with an identity normalizer "
    "(Llama, Mistral, the bundled model) are unaffected",
)
@pytest.mark.parametrize("text", ["a\r\nb", "x\uff46\u0301y", "\uff76\uff9e"])
def test_precompiled_charsmap_grapheme_difference(text, spm):
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_TRAIN_TEXT),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=406,
        character_coverage=0.98,
        normalization_rule_name="nmt_nfkc",
        remove_extra_whitespaces=False,
        byte_fallback=True,
        minloglevel=2,
    )
    data = buffer.getvalue()
    reference = spm.SentencePieceProcessor(model_proto=data)
    backend = spbpe.sentencepiece_bpe_to_tokenizers(
        spbpe.parse_sentencepiece_model(data, "trained"), "trained"
    )
    assert backend.encode(text, add_special_tokens=False).ids == reference.encode(text)


def test_user_defined_pieces_are_rejected_clearly(tmp_path, spm):
    path = tmp_path / "gemma-like.model"
    with path.open("wb") as fh:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(_TRAIN_TEXT),
            model_writer=fh,
            model_type="bpe",
            vocab_size=150,
            user_defined_symbols=["<start_of_turn>"],
            minloglevel=2,
        )
    with pytest.raises(TokenizerError, match=r"gemma-like.model.*user-defined.*tokenizer.json"):
        load_tokenizer(path)


def test_unigram_model_is_rejected_clearly(tmp_path, spm):
    path = tmp_path / "unigram.model"
    with path.open("wb") as fh:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(_TRAIN_TEXT),
            model_writer=fh,
            model_type="unigram",
            vocab_size=100,
            minloglevel=2,
        )
    with pytest.raises(TokenizerError, match=r"unigram.model.*unigram"):
        load_tokenizer(path)


# --------------------------------------------------------------------------------------
# The bundled model and the interface
# --------------------------------------------------------------------------------------


def test_bundled_model_properties(tok, sp):
    assert load_tokenizer(None) is tok
    assert load_tokenizer(DEFAULT_TOKENIZER) is tok
    assert tok.name == "mistral-7b-v0.1 (bundled)"
    assert (tok.bos_token, tok.eos_token) == ("<s>", "</s>")
    assert tok.vocab_size == sp.get_piece_size() == 32000
    assert tok.backend.token_to_id("<s>") == sp.bos_id() == 1
    assert tok.backend.token_to_id("</s>") == sp.eos_id() == 2


def test_shipped_tokenizer_json_is_the_conversion_of_the_model(tok):
    """The package loads data/tokenizer/tokenizer.json; it must be what converting the model
    gives (scripts/build_tokenizer_json.py writes it)."""
    converted = tokmod.convert_bundled(MODEL_FILE)
    shipped = Path(str(resources.files("mosaic_it").joinpath("data/tokenizer/tokenizer.json")))
    assert json.loads(shipped.read_text(encoding="utf-8")) == json.loads(converted.backend.to_str())
    assert (tok.bos_token, tok.eos_token) == (converted.bos_token, converted.eos_token)
    text = "<s> a literal </s> stays text, as in sentencepiece\n\tdone"
    assert tok.encode(text) == converted.encode(text)


def test_a_json_that_cannot_be_read_says_which_tokenizers_to_install(monkeypatch):
    monkeypatch.setattr(tokmod, "_BUNDLED_JSON", "data/tokenizer/missing.json")
    tokmod._load_bundled.cache_clear()
    try:
        with pytest.raises(TokenizerError, match=r"missing\.json: cannot be read by tokenizers .*"
                           r"tokenizers>=0\.20: pip install -U tokenizers"):  # fmt: skip
            tokmod._load_bundled()
    finally:
        tokmod._load_bundled.cache_clear()


def test_the_shipped_json_needs_the_tokenizers_pyproject_asks_for():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'"tokenizers>={tokmod.TOKENIZERS_FOR_JSON}"' in pyproject


def test_bundled_model_settings():
    model = spbpe.parse_sentencepiece_model(MODEL_FILE.read_bytes(), str(MODEL_FILE))
    assert model.model_type == spbpe.BPE_MODEL
    assert model.byte_fallback
    assert model.add_dummy_prefix
    assert not model.remove_extra_whitespaces  # Llama/Mistral keep whitespace as is
    assert model.normalizer_name == "identity" and model.precompiled_charsmap == b""
    assert (model.unk_id, model.bos_id, model.eos_id) == (0, 1, 2)


def test_count_never_adds_special_tokens(tok):
    assert tok.count("") == 0
    assert tok.encode("hi")[0] != tok.backend.token_to_id("<s>")
    assert tok.count("hi") == 1


def test_decode_round_trip(tok):
    for text in ["Hello world", "  two leading spaces", "tabs\tand\nnewlines", "😀 中文 العربية"]:
        assert tok.decode(tok.encode(text)) == text


def test_tokenizer_is_immutable(tok):
    with pytest.raises(AttributeError):
        tok.name = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# Loading from files and directories
# --------------------------------------------------------------------------------------

_SAMPLE = ["Hello world", "  spaces  and\ttabs\n", "😀 中文", LONG_TEXT[:500]]


def test_load_tokenizer_json_file(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    tok.backend.save(str(path))
    loaded = load_tokenizer(str(path))
    assert loaded.name == str(path)
    assert (loaded.bos_token, loaded.eos_token) == ("<s>", "</s>")  # inferred from specials
    assert loaded.encode_batch(_SAMPLE) == tok.encode_batch(_SAMPLE)
    assert load_tokenizer(path) is not None  # PathLike accepted too


def test_load_directory_with_config(tok, tmp_path):
    tok.backend.save(str(tmp_path / "tokenizer.json"))
    config = {
        "bos_token": {"__type": "AddedToken", "content": "<s>", "special": True},
        "eos_token": "</s>",
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.name == str(tmp_path)
    assert (loaded.bos_token, loaded.eos_token) == ("<s>", "</s>")
    assert loaded.count_batch(_SAMPLE) == tok.count_batch(_SAMPLE)

    # A tokenizer that does not prepend BOS reports none.
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": False}))
    assert load_tokenizer(str(tmp_path)).bos_token is None


def test_load_directory_with_sentencepiece_model_only(tok, tmp_path):
    shutil.copy(MODEL_FILE, tmp_path / "tokenizer.model")
    loaded = load_tokenizer(str(tmp_path))
    assert (loaded.bos_token, loaded.eos_token) == ("<s>", "</s>")
    assert loaded.encode_batch(_SAMPLE) == tok.encode_batch(_SAMPLE)


def test_load_sentencepiece_model_path(tok, tmp_path):
    path = tmp_path / "my.model"
    shutil.copy(MODEL_FILE, path)
    loaded = load_tokenizer(str(path))
    assert loaded.name == str(path)
    assert loaded.encode_batch(_SAMPLE) == tok.encode_batch(_SAMPLE)
    assert load_tokenizer(str(path)).backend is loaded.backend  # cached per path


def _toy_backend(specials: list[str], post_bos: str | None = None) -> tokenizers.Tokenizer:
    vocab = {"<unk>": 0, "h": 1, "i": 2, "hi": 3}
    backend = tokenizers.Tokenizer(BPE(vocab=vocab, merges=[("h", "i")], unk_token="<unk>"))
    backend.add_special_tokens([AddedToken(s, special=True) for s in specials])
    if post_bos is not None:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{post_bos} $A", special_tokens=[(post_bos, backend.token_to_id(post_bos))]
        )
    return backend


@pytest.mark.parametrize(
    ("specials", "config", "expected"),
    [
        (["<s>", "</s>"], None, ("<s>", "</s>")),
        (
            ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
            None,
            ("<|begin_of_text|>", "<|end_of_text|>"),
        ),
        (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, (None, "<|endoftext|>")),
        (
            ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            {"bos_token": None, "eos_token": "<|im_end|>"},
            (None, "<|im_end|>"),
        ),
        (["<pad>"], None, (None, None)),
        (["<s>", "</s>"], {"add_bos_token": False}, (None, "</s>")),
        (
            ["<s>", "</s>"],
            {"bos_token": {"content": "<s>"}, "eos_token": {"content": "</s>"}},
            ("<s>", "</s>"),
        ),
    ],
)
def test_bos_eos_detection(tmp_path, specials, config, expected):
    _toy_backend(specials).save(str(tmp_path / "tokenizer.json"))
    if config is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = load_tokenizer(str(tmp_path))
    assert (loaded.bos_token, loaded.eos_token) == expected


def test_post_processor_truncation_and_padding_do_not_affect_counts(tmp_path):
    backend = _toy_backend(["<s>", "</s>"], post_bos="<s>")
    backend.enable_truncation(max_length=2)
    backend.enable_padding(length=8, pad_id=0, pad_token="<unk>")
    path = tmp_path / "tokenizer.json"
    backend.save(str(path))
    loaded = load_tokenizer(str(path))
    assert loaded.encode("hihihi") == [3, 3, 3]
    assert loaded.count("hihihi") == 3
    assert loaded.count_batch(["hi", "hihihi", ""]) == [1, 3, 0]


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing.model", "missing.json", "sub/dir/missing"])
def test_missing_path(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(TokenizerError, match="no such file or directory") as info:
        load_tokenizer(str(path))
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"this is not a protobuf at all",
        b"\x0a\xff\xff\xff\x0f",  # a field claiming 4 GiB
        MODEL_FILE.read_bytes()[:100_000],  # truncated download
    ],
    ids=["empty", "text", "bad-length", "truncated"],
)
def test_corrupt_sentencepiece_model(tmp_path, content):
    path = tmp_path / "tokenizer.model"
    path.write_bytes(content)
    with pytest.raises(TokenizerError, match="not a valid SentencePiece model") as info:
        load_tokenizer(str(path))
    assert str(path) in str(info.value)


def test_bad_tokenizer_json(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("{not json")
    with pytest.raises(TokenizerError, match="not valid JSON") as info:
        load_tokenizer(str(path))
    assert str(path) in str(info.value)
    path.write_text('{"version": "1.0", "model": {"type": "Nonsense"}}')
    with pytest.raises(TokenizerError, match="not a valid tokenizer.json"):
        load_tokenizer(str(path))


def test_bad_config_json(tok, tmp_path):
    tok.backend.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text("[1, 2")
    with pytest.raises(TokenizerError, match=r"tokenizer_config\.json: not valid JSON"):
        load_tokenizer(str(tmp_path))


def test_empty_directory(tmp_path):
    with pytest.raises(TokenizerError, match="neither tokenizer.json nor tokenizer.model"):
        load_tokenizer(str(tmp_path))


def test_empty_spec():
    with pytest.raises(TokenizerError, match="empty"):
        load_tokenizer("")


def test_hub_failure_is_wrapped(monkeypatch):
    def offline(name):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(tokmod, "_from_pretrained", offline)
    tokmod._cached_hub.cache_clear()
    with pytest.raises(TokenizerError, match=r"some-org/some-model.*Hugging Face Hub.*unreachable"):
        load_tokenizer("some-org/some-model")
