"""Tokenizers converted from another format, kept in the cache as ``tokenizer.json``.

Building Gemma 3's tokenizer from its GGUF file costs about 2 s of CPU on every run (its
513,511 merges are derived from the scores of 262,144 pieces); reading back the
``tokenizer.json`` the conversion gives costs a third of that. A converted tokenizer is kept in
``cache_root()/tokenizers/<stem>-<key>/``: ``tokenizer.json`` and ``special.json`` (its BOS
and EOS tokens, whether special tokens written in a text are read as text, which
``tokenizer.json`` does not record, and the full key). The key is the SHA-256 of what the
tokenizer is made from (for a GGUF file its metadata), of this conversion's version and of the
``tokenizers`` library's, so an edited file, a changed conversion or another library never
reads a stale entry. The key also names the tokenizer's content
(:attr:`.tokenizer.Tokenizer.digest`), under which facts derived from its vocabulary are kept
(:mod:`.vocab_cache`).

The cache only saves time: an entry that cannot be read is built again and replaced, and a
cache that cannot be written is left alone (the run goes on with the tokenizer it built). Both
files are written under temporary names and renamed (:func:`mosaic_it.cache.keep`),
``special.json`` last, so two runs that convert the same file at once each see a whole entry
or none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import tokenizers

from mosaic_it.cache import cache_root, keep

# the conversion's version: raise it when a change to the conversion changes what it builds
CONVERSION = 2
Built = tuple[tokenizers.Tokenizer, str | None, str | None]


def conversion_key(source_digest: str) -> str:
    """The key of the conversion of what ``source_digest`` names: it also names what the
    conversion builds (:attr:`.tokenizer.Tokenizer.digest` is made from it)."""
    return hashlib.sha256(
        f"mosaic-it tokenizer conversion {CONVERSION}\0tokenizers {tokenizers.__version__}\0"
        f"{source_digest}".encode()
    ).hexdigest()


def cached_conversion(stem: str, source_digest: str, build: Callable[[], Built]) -> Built:
    """The tokenizer kept for ``source_digest``, else ``build()``'s, kept for the next run."""
    key = conversion_key(source_digest)
    folder = cache_root() / "tokenizers" / f"{_safe(stem)}-{key[:16]}"
    found = _read(folder, key)
    if found is not None:
        return found
    built = build()
    _write(folder, key, built)
    return built


def _safe(stem: str) -> str:
    kept = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return kept[:60] or "tokenizer"


def _read(folder: Path, key: str) -> Built | None:
    try:
        special = json.loads((folder / "special.json").read_text(encoding="utf-8"))
        bos, eos, as_text = special["bos"], special["eos"], special["specials_as_text"]
        if (
            special["key"] != key
            or not all(t is None or isinstance(t, str) for t in (bos, eos))
            or not isinstance(as_text, bool)
        ):
            return None  # checked before the tokenizer, whose reading is the costly part
        backend = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception:  # missing, partial or unreadable: built again and replaced
        return None
    if as_text:
        backend.encode_special_tokens = True
    return backend, bos, eos


def _write(folder: Path, key: str, built: Built) -> None:
    backend, bos, eos = built
    as_text = bool(getattr(backend, "encode_special_tokens", False))
    special = json.dumps(
        {"key": key, "bos": bos, "eos": eos, "specials_as_text": as_text}, ensure_ascii=False
    )
    for name, text in (("tokenizer.json", backend.to_str()), ("special.json", special)):
        if not keep(folder / name, text):
            return  # a read-only or full cache: the next run converts again
