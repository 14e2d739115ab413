"""Converted tokenizers kept in the cache: read back the same, keyed by what they are made
from, rebuilt when an entry is unreadable, and never needed (a cache that cannot be written)."""

import json

import pytest

from mosaic_it import load_tokenizer
from mosaic_it.budget import tokenizer as tokenizer_module
from mosaic_it.budget.converted import cached_conversion
from mosaic_it.budget.gguf import metadata_digest

from ..chat_fixtures import smollm2_gguf  # noqa: F401 - fixture

TEXTS = [
    "It's 2024!\n\n1. héllo 😀 wörld",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] text that writes special tokens </s> [/INST]",
    "中文文本，  two  spaces\tand a tab",
]


def never_built():
    pytest.fail("the tokenizer was built again instead of read from the cache")


def fresh_gguf_load(path):
    tokenizer_module._cached_gguf.cache_clear()  # the in-process cache, not the one on disk
    return load_tokenizer(path)


def test_a_gguf_tokenizer_is_kept_and_read_back_the_same(smollm2_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path / "cache"))
    built = fresh_gguf_load(smollm2_gguf)
    [entry] = (tmp_path / "cache" / "tokenizers").iterdir()
    assert entry.name.startswith("smollm2-135m-tokenizer-")
    assert sorted(p.name for p in entry.iterdir()) == ["special.json", "tokenizer.json"]
    again = fresh_gguf_load(smollm2_gguf)
    assert (again.bos_token, again.eos_token) == (built.bos_token, built.eos_token)
    assert [again.encode(t) for t in TEXTS] == [built.encode(t) for t in TEXTS]
    # read back, not built: the same key finds the entry without building
    kept = cached_conversion(smollm2_gguf.stem, metadata_digest(smollm2_gguf), never_built)
    assert kept[0].to_str() == built.backend.to_str()


def test_special_tokens_written_in_a_text_stay_text_after_the_round_trip(tmp_path, monkeypatch):
    """SentencePiece reads "<s>" written in a text as characters; tokenizer.json does not record
    that setting, so the cache does."""
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path))
    tok = load_tokenizer()
    assert tok.backend.encode_special_tokens
    cached_conversion("mistral", "digest", lambda: (tok.backend, tok.bos_token, tok.eos_token))
    backend, bos, eos = cached_conversion("mistral", "digest", never_built)
    assert (bos, eos) == (tok.bos_token, tok.eos_token) and backend.encode_special_tokens
    for text in TEXTS:
        assert backend.encode(text, add_special_tokens=False).ids == tok.encode(text)


def test_the_key_follows_the_metadata_not_the_tensors(smollm2_gguf, tmp_path):
    same = tmp_path / "tensors-changed.gguf"
    same.write_bytes(smollm2_gguf.read_bytes() + b"\0" * 64)  # data past the metadata
    assert metadata_digest(same) == metadata_digest(smollm2_gguf)
    data = bytearray(smollm2_gguf.read_bytes())
    at = data.index(b"<|im_end|>")
    data[at + 2 : at + 4] = b"IM"  # one token of the vocabulary renamed
    other = tmp_path / "vocab-changed.gguf"
    other.write_bytes(bytes(data))
    assert metadata_digest(other) != metadata_digest(smollm2_gguf)


def test_an_unreadable_entry_is_built_again_and_replaced(smollm2_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path / "cache"))
    expected = fresh_gguf_load(smollm2_gguf)
    [entry] = (tmp_path / "cache" / "tokenizers").iterdir()
    (entry / "tokenizer.json").write_text('{"version": "1.0", "model": ')  # cut short
    assert fresh_gguf_load(smollm2_gguf).encode(TEXTS[0]) == expected.encode(TEXTS[0])
    json.loads((entry / "tokenizer.json").read_text())  # whole again
    special = json.loads((entry / "special.json").read_text())
    (entry / "special.json").write_text(json.dumps({**special, "key": "another"}))
    assert fresh_gguf_load(smollm2_gguf).encode(TEXTS[1]) == expected.encode(TEXTS[1])
    assert json.loads((entry / "special.json").read_text())["key"] == special["key"]


def test_a_cache_that_cannot_be_written_only_costs_time(smollm2_gguf, tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache would be\n")
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(blocked))
    tok = fresh_gguf_load(smollm2_gguf)
    assert tok.eos_token == "<|im_end|>" and len(tok.encode(TEXTS[1])) == 10
    assert blocked.read_text() == "a file where the cache would be\n"
