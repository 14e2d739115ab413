"""Whether a tokenizer is word-local, checked on the tokenizer itself.

A word-local tokenizer (see :mod:`.counting`: Llama-family SentencePiece BPE, no pre-tokenizer,
spaces written "▁" and one prepended) tokenizes each word of a text independently, so a text's
count is the sum of its words' counts. :func:`supports` checks its model and normaliser, and
scans every piece of its vocabulary (:func:`vocabulary_spans`, kept in the cache for the next
run) for what would let a token cross a word's edge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tokenizers.models import BPE

from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.budget.vocab_cache import vocabulary_fact


@dataclass(frozen=True)
class Locality:
    """What :func:`supports` found out about a word-local tokenizer."""

    # for every two adjacent characters inside some vocabulary piece (spaces written " "), the
    # pieces holding them and where; None when cutting words is not safe (unknown characters
    # side by side are fused into one token)
    spans: dict[str, tuple[tuple[str, int], ...]] | None


_INSPECTED: dict[int, tuple[object, Locality | None]] = {}


def supports(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer is word-local (checked once per tokenizer)."""
    return word_locality(tokenizer) is not None


def word_locality(tokenizer: Tokenizer) -> Locality | None:
    """What :func:`supports` found out about this tokenizer (None: not word-local)."""
    known = _INSPECTED.get(id(tokenizer.backend))
    if known is not None and known[0] is tokenizer.backend:
        return known[1]
    result = _check(tokenizer)
    _INSPECTED[id(tokenizer.backend)] = (tokenizer.backend, result)  # keeps the id valid
    return result


def _check(tokenizer: Tokenizer) -> Locality | None:
    backend = tokenizer.backend
    model = backend.model
    if not isinstance(model, BPE) or backend.pre_tokenizer is not None:
        return None
    if model.dropout not in (None, 0, 0.0):
        return None
    if model.continuing_subword_prefix or model.end_of_word_suffix:
        return None  # the whole text is one BPE word: its end would be marked, not each word's
    try:
        normalizer = json.loads(backend.normalizer.__getstate__()) if backend.normalizer else {}
    except Exception:  # noqa: BLE001 - any normalizer we cannot inspect is not supported
        return None
    steps = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else None
    expected = [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
    ]
    if steps != expected:
        return None
    spans = vocabulary_spans(tokenizer)
    if spans is None:
        return None
    if model.fuse_unk and not model.byte_fallback:
        return Locality(None)  # two unknown characters side by side become one token
    return Locality(spans)


Spans = dict[str, tuple[tuple[str, int], ...]]
# the version of vocabulary_spans' derivation: raise it when a change changes what it finds
SPANS_VERSION = 1


def vocabulary_spans(tokenizer: Tokenizer) -> Spans | None:
    """For every two adjacent characters of a vocabulary piece (added tokens left out, spaces
    written " "), the pieces holding them and where; None when a piece holds a newline, or "▁"
    after another character (words would not be local). About
    0.1 s for the bundled tokenizer's 32,000 pieces, half that read back from the cache
    (:mod:`.vocab_cache`)."""

    def derive() -> Spans | None:
        vocab = tokenizer.backend.get_vocab(with_added_tokens=False)
        pieces = sorted(vocab, key=vocab.__getitem__)  # by id: the same order every run
        for piece in pieces:
            if "\n" in piece or "▁" in piece.lstrip("▁"):
                return None
        spans: dict[str, list[tuple[str, int]]] = {}
        for piece in pieces:
            text = piece.replace("▁", " ")
            for i in range(len(text) - 1):
                spans.setdefault(text[i : i + 2], []).append((text, i))
        return {pair: tuple(found) for pair, found in spans.items()}

    return vocabulary_fact(
        tokenizer, "piece-spans", SPANS_VERSION, derive, _spans_to_json, _spans_from_json
    )


def _spans_to_json(spans: Spans | None) -> object:
    """Each pair's spans flat, piece then offset (JSON reads flat lists back fastest)."""
    if spans is None:
        return None
    return {pair: [x for span in found for x in span] for pair, found in spans.items()}


def _spans_from_json(value: object) -> Spans | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("not a table of spans")
    spans: Spans = {}
    for pair, flat in value.items():
        if len(pair) != 2 or not isinstance(flat, list):
            raise ValueError(f"{pair!r}: not the spans of a pair")
        spans[pair] = tuple(zip(flat[::2], flat[1::2], strict=True))  # pieces, offsets
    return spans
