"""Facts derived from a vocabulary, kept in the cache: read back equal to a fresh derivation on
real tokenizers, keyed by the tokenizer's content (an edited file never reads a stale entry),
derived again when an entry is unreadable, and never needed (a cache that cannot be written)."""

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import pytest

from mosaic_it import load_tokenizer
from mosaic_it.budget import hard_pairs, word_local
from mosaic_it.budget.hard_pairs import PAIRS_VERSION, vocabulary_pairs
from mosaic_it.budget.vocab_cache import vocabulary_fact
from mosaic_it.budget.word_local import SPANS_VERSION, vocabulary_spans

from ..chat_fixtures import llama3_dir, qwen_dir, smollm2_gguf  # noqa: F401 - fixtures
from .test_pretokens import family_tokenizer, spaced_tokenizer

# each fact: its name and version in the cache, its function, and how it is read back
FACTS = [
    ("ascii-pairs", PAIRS_VERSION, vocabulary_pairs, hard_pairs._pairs_from_json),
    ("piece-spans", SPANS_VERSION, vocabulary_spans, word_local._spans_from_json),
]


def never_derived():
    pytest.fail("the fact was derived again instead of read from the cache")


def entries(cache):
    folder = cache / "vocabulary"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def read_back(tokenizer, name, version, from_json):
    """The fact as the cache holds it, failing if it has to be derived."""
    return vocabulary_fact(tokenizer, name, version, never_derived, repr, from_json)


# the pairs of every family; the spans (a large table for byte-level BPE's long pieces, which
# never need it: only tokenizers without a pre-tokenizer are word-local) of three
CASES = [("ascii-pairs", f) for f in ("bundled", "qwen2", "llama3", "smollm2", "gemma3")]
CASES += [("piece-spans", f) for f in ("bundled", "smollm2", "gemma3")]


@pytest.mark.parametrize(("fact_name", "family"), CASES)
def test_a_fact_read_back_equals_a_fresh_one(
    fact_name, family, qwen_dir, llama3_dir, smollm2_gguf, tmp_path, monkeypatch
):
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path))
    if family == "bundled":
        tok = load_tokenizer()
    else:
        tok = family_tokenizer(family, qwen_dir, llama3_dir, smollm2_gguf)
    assert tok.digest
    uncached = replace(tok, digest=None)  # no digest: derived every time, nothing kept
    for name, version, fact, from_json in FACTS:
        if name != fact_name:
            continue
        fresh = fact(uncached)
        assert not [e for e in entries(tmp_path) if e.startswith(name)]
        assert fact(tok) == fresh  # derived, then kept
        assert [e for e in entries(tmp_path) if e.startswith(name)]
        assert fact(tok) == fresh  # read back
        assert read_back(tok, name, version, from_json) == fresh
    # the proof built on it finds the same
    proof = hard_pairs if fact_name == "ascii-pairs" else word_local
    assert proof._check(tok) == proof._check(uncached)


def test_gemma_like_hard_pairs_take_the_added_tokens_of_the_object(tmp_path, monkeypatch):
    """Only the vocabulary's pairs are kept: added tokens are read from the tokenizer."""
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path))
    tok = load_tokenizer()
    spaced = spaced_tokenizer()  # the bundled vocabulary with Gemma-like added tokens
    spaced = replace(spaced, digest=tok.digest)  # the same pieces: the same vocabulary facts
    assert vocabulary_pairs(spaced) == vocabulary_pairs(replace(spaced, digest=None))
    scheme = hard_pairs._check(spaced)
    assert scheme == hard_pairs._check(replace(spaced, digest=None))
    space = scheme.class_of(" ")
    assert not scheme.hard[space][space]  # "  " is an added token, no piece


def edited(path, piece):
    """The tokenizer.json at ``path`` with one more vocabulary piece."""
    description = json.loads(path.read_text(encoding="utf-8"))
    vocab = description["model"]["vocab"]
    vocab[piece] = max(vocab.values()) + 1
    return json.dumps(description, ensure_ascii=False)


def test_an_edited_tokenizer_never_reads_a_stale_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tokenizer.json"
    path.write_text(load_tokenizer().backend.to_str(), encoding="utf-8")
    tok = load_tokenizer(path)
    pairs, spans = vocabulary_pairs(tok), vocabulary_spans(tok)
    assert "~}" not in pairs and spans is not None and "~}" not in spans
    # the same content elsewhere reads the same entries: the key is the content, not the path
    elsewhere = tmp_path / "copy" / "tokenizer.json"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(path.read_bytes())
    copy = load_tokenizer(elsewhere)
    assert copy.digest == tok.digest
    assert read_back(copy, *FACTS[0][:2], FACTS[0][3]) == pairs
    # one piece more, with a pair no piece held: the facts follow the edit
    path.write_text(edited(path, "x~}"), encoding="utf-8")
    changed = load_tokenizer(path)
    assert changed.digest != tok.digest
    assert vocabulary_pairs(changed) == pairs | {"x~", "~}"}
    assert vocabulary_spans(changed)["~}"] == (("x~}", 1),)
    # a piece holding a newline: no longer word-local
    path.write_text(edited(path, "a\nb"), encoding="utf-8")
    assert vocabulary_spans(load_tokenizer(path)) is None
    assert not word_local.supports(load_tokenizer(path))
    assert word_local.supports(tok)
    assert len(entries(tmp_path / "cache")) == 5  # two facts of two contents, spans of one


def test_an_edited_gguf_file_never_reads_a_stale_entry(smollm2_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path / "cache"))
    tok = load_tokenizer(smollm2_gguf)
    data = bytearray(smollm2_gguf.read_bytes())
    at = data.index(b"<|im_end|>")
    data[at + 2 : at + 4] = b"IM"  # one token of the vocabulary renamed
    other = tmp_path / "vocab-changed.gguf"
    other.write_bytes(bytes(data))
    changed = load_tokenizer(other)
    assert changed.digest != tok.digest
    assert vocabulary_spans(tok) == vocabulary_spans(replace(tok, digest=None))
    assert vocabulary_spans(changed) == vocabulary_spans(replace(changed, digest=None))
    assert vocabulary_spans(changed) != vocabulary_spans(tok)


def test_an_unreadable_entry_is_derived_again_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path))
    tok = load_tokenizer()
    expected = {fact: fact(replace(tok, digest=None)) for _, _, fact, _ in FACTS}
    for fact in expected:
        fact(tok)
    for name in entries(tmp_path):
        entry = tmp_path / "vocabulary" / name
        whole = entry.read_text(encoding="utf-8")
        fact = vocabulary_pairs if name.startswith("ascii-pairs") else vocabulary_spans
        for broken in (
            whole[: len(whole) // 2],  # cut short
            json.dumps({"key": json.loads(whole)["key"], "fact": 7}),  # not what is written
            json.dumps({**json.loads(whole), "key": "another"}),  # another key
            "",
        ):
            entry.write_text(broken, encoding="utf-8")
            assert fact(tok) == expected[fact]
            assert entry.read_text(encoding="utf-8") == whole  # replaced by a whole entry
        entry.unlink()
        assert fact(tok) == expected[fact]
        assert entry.read_text(encoding="utf-8") == whole


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache would be\n")
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(blocked))
    tok = load_tokenizer()
    for _, _, fact, _ in FACTS:
        assert fact(tok) == fact(replace(tok, digest=None))
    assert word_local.supports(tok)
    assert blocked.read_text() == "a file where the cache would be\n"


def test_a_tokenizer_without_a_digest_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path))
    made = replace(load_tokenizer(), digest=None)
    assert vocabulary_spans(made) is not None and vocabulary_pairs(made)
    assert entries(tmp_path) == []


def _spans_in_a_process(_):
    tok = load_tokenizer()
    return vocabulary_spans(tok) == vocabulary_spans(replace(tok, digest=None))


def test_runs_at_once_each_see_a_whole_entry_or_none(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path))
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        assert all(pool.map(_spans_in_a_process, range(4)))
    [entry] = entries(tmp_path)
    json.loads((tmp_path / "vocabulary" / entry).read_text(encoding="utf-8"))
    assert not [p for p in (tmp_path / "vocabulary").iterdir() if p.name.startswith(".")]


def test_every_loader_names_the_content(qwen_dir, smollm2_gguf):
    """The digest is of the content: a tokenizer.json's text, a conversion's key, else the
    backend's serialization; the bundled tokenizer is its tokenizer.json."""
    from importlib import resources

    from mosaic_it.budget import tokenizer as tokmod
    from mosaic_it.budget.converted import conversion_key
    from mosaic_it.budget.gguf import metadata_digest

    bundled = load_tokenizer()
    text = resources.files("mosaic_it").joinpath(tokmod._BUNDLED_JSON).read_text("utf-8")
    assert bundled.digest == tokmod.tokenizer_digest("tokenizer.json", text)
    from .test_tokenizer import MODEL_FILE

    converted = tokmod.convert_bundled(MODEL_FILE)
    assert converted.digest == tokmod.serialized_digest(converted.backend)
    assert converted.digest != bundled.digest  # another way of building: another name
    assert load_tokenizer(MODEL_FILE).digest == converted.digest  # the same model, same build
    qwen = (qwen_dir / "tokenizer.json").read_text("utf-8")
    assert load_tokenizer(qwen_dir).digest == tokmod.tokenizer_digest("tokenizer.json", qwen)
    key = conversion_key(metadata_digest(smollm2_gguf))
    assert load_tokenizer(smollm2_gguf).digest == tokmod.tokenizer_digest("converted", key)
