"""Hard pairs: two adjacent characters a tokenizer never takes into one piece, whatever is around.

Byte-level BPE tokenizers behind GPT-2's (SmolLM2's, after a digit split), Qwen2's, Llama-3's,
Tekken's or o200k's split expression cut text into pieces with a regular expression and run
BPE on each piece alone, so a text's count is the sum of its pieces' counts. A *hard pair* is
two adjacent characters that no alternative of the expression can take in one piece, not even
part way (a letter then a non-letter, a digit then anything for Qwen2, a newline then a
non-space character, ...). No attempt to match consumes across a hard pair, and none looks more
than one character past what it consumed, so the pieces before a hard pair are the same
whatever text follows it (given the one character after it; or whatever follows, when the
pair's first character is no white space, which ``\\s+(?!\\S)`` alone looks past), and those
after it are the same whatever text precedes it. The reasoning is made for the expressions in
:data:`PATTERNS` only, and characters are sorted into seven classes only when they are ASCII:
any pair with another character is taken as one that can join, which only means fewer cuts.

BPE run on the whole text with spaces written "▁" and nothing prepended (Gemma's) has hard
pairs too: two characters no vocabulary piece and no added token holds side by side, which no
merge can join (see :func:`_vocabulary_scheme`). There every ASCII character is a class of its
own (Gemma's pieces hold a space after only two ASCII characters: a space and ">"), and nothing
looks past a hard pair at all. Finding them reads the whole vocabulary (0.35 s to 1 s for
Gemma 3's 262,144 pieces), so the pairs its pieces hold are kept in the cache, keyed by the
tokenizer's content (:mod:`.vocab_cache`).

:mod:`.pretokens` folds exact counts from these pairs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from tokenizers import Regex, pre_tokenizers
from tokenizers.models import BPE

from mosaic_it.budget.gguf import (
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    O200K_PATTERN,
    QWEN2_PATTERN,
    TEKKEN_PATTERN,
)
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.budget.vocab_cache import vocabulary_fact

# the split expressions reasoned about above, by the rules their alternatives follow (see
# _joinable): GPT-2's (also behind ByteLevel's own regex), Qwen2's (a digit a piece), Llama-3's
# (digits three at most, as in tiktoken's cl100k), Mistral's Tekken (Qwen2's, with letters by
# case, which only joins fewer pairs, and "/" after newlines) and tiktoken's o200k (Tekken's,
# digits three at most, and a contraction may follow letters)
GPT2, QWEN2, LLAMA3, TEKKEN, O200K = "gpt2", "qwen2", "llama3", "tekken", "o200k"
PATTERNS = {
    GPT2_PATTERN: GPT2,
    QWEN2_PATTERN: QWEN2,
    LLAMA3_PATTERN: LLAMA3,
    TEKKEN_PATTERN: TEKKEN,
    O200K_PATTERN: O200K,
}
NAMES = {
    GPT2_PATTERN: "GPT-2's",
    QWEN2_PATTERN: "Qwen2's",
    LLAMA3_PATTERN: "Llama-3's",
    TEKKEN_PATTERN: "Tekken's",
    O200K_PATTERN: "o200k's",
}

# character classes of the split expressions (ASCII only; everything else is UNKNOWN)
UNKNOWN, LETTER, DIGIT, NEWLINE, SPACE, TAB, PUNCT = range(7)
WHITE = (SPACE, TAB, NEWLINE)


def _classes() -> tuple[int, ...]:
    table = [UNKNOWN] * 128
    for c in range(128):
        ch = chr(c)
        if ch.isalpha():
            table[c] = LETTER
        elif ch.isdigit():
            table[c] = DIGIT
        elif ch in "\r\n":
            table[c] = NEWLINE
        elif ch == " ":
            table[c] = SPACE
        elif ch == "\t":
            table[c] = TAB
        elif 33 <= c <= 126:
            table[c] = PUNCT
    return tuple(table)


CLASS = _classes()
# the ASCII characters of each class, as they are written in a character set
_CHARS = {
    LETTER: "A-Za-z",
    DIGIT: "0-9",
    NEWLINE: r"\r\n",
    SPACE: " ",
    TAB: r"\t",
    PUNCT: r"!-/:-@\[-`{-~",
}
# every ASCII character a class of its own (class 0: any other character)
EACH = tuple(range(1, 129))


def _joinable(a: int, b: int, rules: str, digits_apart: bool) -> bool:
    """Whether some alternative of the expression can consume class ``a`` then class ``b``.

    Qwen2 and Llama-3 (their alternatives, and the pairs they consume): contractions ("'" then
    letters), ``[^\\r\\n\\p{L}\\p{N}]?\\p{L}+`` (space, tab or punctuation, then letters),
    ``\\p{N}{1,3}`` (digits, Llama-3 only), `` ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*`` (a space then
    punctuation, punctuation, newlines after it), and the white-space runs.

    GPT-2: contractions, `` ?\\p{L}+`` (only a space may come before letters), `` ?\\p{N}+``,
    `` ?[^\\s\\p{L}\\p{N}]+`` (no newlines after punctuation), and the white-space runs.

    Tekken: Qwen2's, but punctuation may be followed by newlines and "/" in any order (a
    newline then punctuation). o200k: Tekken's, digits three at most, and letters may take a
    contraction after them (a letter then "'"); an attempt at a contraction reads at most
    three characters after the letters, each joinable to the one before, so it never reads
    past a hard pair.

    ``digits_apart``: a pre-tokenizer step before the expression cuts on both sides of every
    digit (``Digits(individual_digits=True)``), so no pair with a digit joins.
    """
    if UNKNOWN in (a, b):
        return True
    if digits_apart and DIGIT in (a, b):
        return False
    if rules == GPT2:
        return (
            (b == LETTER and a in (LETTER, SPACE, PUNCT))
            or (b == DIGIT and a in (DIGIT, SPACE))
            or (b == PUNCT and a in (PUNCT, SPACE))
            or (a in WHITE and b in WHITE)
        )
    return (
        (b == LETTER and a in (LETTER, SPACE, TAB, PUNCT))
        or (rules == O200K and a == LETTER and b == PUNCT)
        or (rules in (TEKKEN, O200K) and a == NEWLINE and b == PUNCT)
        or (rules in (LLAMA3, O200K) and a == DIGIT == b)
        or (a == SPACE and b == PUNCT)
        or (a == PUNCT and b in (PUNCT, NEWLINE))
        or (a in WHITE and b in WHITE)
    )


def _set_of(chars: str) -> str:
    """Characters written for a regular expression's character set."""
    return "".join(c if c.isalnum() else f"\\x{ord(c):02x}" for c in chars)


@dataclass(frozen=True)
class Scheme:
    """What makes a tokenizer foldable here: its split expression (None: no pre-tokenizer, the
    model runs on the whole normalised text), its normaliser and its hard pairs."""

    pattern: str | None
    digits_apart: bool  # a Digits(individual_digits=True) step runs before the expression
    nfc: bool
    classes: tuple[int, ...]  # the class of each ASCII character (0: any other character)
    hard: tuple[tuple[bool, ...], ...]  # hard[a][b] for classes a, b

    def describe(self) -> str:
        if self.pattern is None:
            return "BPE on the whole text, cut only where no piece or added token joins"
        name = NAMES[self.pattern]
        extra = ", digits apart" if self.digits_apart else ""
        return f"byte-level BPE, {name} split expression{extra}{', NFC' if self.nfc else ''}"

    def class_of(self, ch: str) -> int:
        return self.classes[ord(ch)] if ch < "\x80" else UNKNOWN

    def splitter(self) -> pre_tokenizers.PreTokenizer | None:
        """The tokenizer's own pre-tokenization without its byte mapping (pieces, offsets)."""
        if self.pattern is None:
            return None
        split = pre_tokenizers.Split(Regex(self.pattern), behavior="isolated")
        if not self.digits_apart:
            return split
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), split])

    def apart(self) -> tuple[tuple[bool, ...], ...]:
        """apart[a][b]: the pieces on either side of classes a, b are those of each side alone,
        whatever the other holds: a hard pair, whose first character is no white space where
        a split expression may look one character past a match; BPE on the whole text looks
        at nothing past a hard pair."""
        n, looks_past = len(self.hard), self.pattern is not None
        return tuple(
            tuple(self.hard[a][b] and not (looks_past and a in WHITE) for b in range(n))
            for a in range(n)
        )

    def _members(self, cls: int) -> str:
        if self.classes is CLASS:
            return _CHARS[cls]
        return _set_of(chr(cls - 1))

    def cuts(self) -> tuple[re.Pattern[str], re.Pattern[str]]:
        """Where counting may cut a text at a space, and a space it may not cut before (see
        PieceCounter.count_texts): a space after an ASCII character whose pair with the space
        :meth:`apart` holds is a cut; any other space is odd, and so is a space that starts a
        text (callers test that apart)."""
        apart, n = self.apart(), len(self.hard)
        space = self.class_of(" ")
        before_space = "".join(self._members(a) for a in range(1, n) if apart[a][space])
        if not before_space:
            return re.compile("(?!)"), re.compile(" ")
        # a pattern that starts with a class is searched twice as fast as one with "^|"
        return re.compile(f"(?<=[{before_space}]) "), re.compile(f"[^{before_space}] ")


_INSPECTED: dict[int, tuple[object, Scheme | None]] = {}


def pretoken_scheme(tokenizer: Tokenizer) -> Scheme | None:
    """The scheme of a BPE tokenizer :mod:`.pretokens` can fold, or None (checked once)."""
    known = _INSPECTED.get(id(tokenizer.backend))
    if known is not None and known[0] is tokenizer.backend:
        return known[1]
    result = _check(tokenizer)
    _INSPECTED[id(tokenizer.backend)] = (tokenizer.backend, result)
    return result


def _check(tokenizer: Tokenizer) -> Scheme | None:
    backend = tokenizer.backend
    model = backend.model
    if not isinstance(model, BPE) or model.dropout not in (None, 0, 0.0):
        return None
    if model.continuing_subword_prefix or model.end_of_word_suffix:
        return None
    try:
        normalizer = json.loads(backend.normalizer.__getstate__()) if backend.normalizer else None
        pre = json.loads(backend.pre_tokenizer.__getstate__()) if backend.pre_tokenizer else None
    except Exception:  # noqa: BLE001 - anything we cannot inspect is not foldable
        return None
    if pre is None and normalizer in (_SPACES_ESCAPED, _SPACES_ESCAPED["normalizers"][0]):
        return _vocabulary_scheme(tokenizer)
    if normalizer not in (None, {"type": "NFC"}) or not pre:
        return None
    found = _split_of(pre.get("pretokenizers") or [] if pre.get("type") == "Sequence" else [pre])
    if found is None:
        return None
    pattern, digits_apart = found
    rules = PATTERNS[pattern]
    hard = tuple(
        tuple(not _joinable(a, b, rules, digits_apart) for b in range(7)) for a in range(7)
    )
    return Scheme(pattern, digits_apart, normalizer is not None, CLASS, hard)


# SentencePiece-style BPE with no space prefix (Gemma's): spaces written "▁", nothing prepended
_SPACES_ESCAPED = {
    "type": "Sequence",
    "normalizers": [{"type": "Replace", "pattern": {"String": " "}, "content": "▁"}],
}


def _vocabulary_scheme(tokenizer: Tokenizer) -> Scheme | None:
    """Hard pairs of BPE run on the whole (space-escaped) text: two ASCII characters no
    vocabulary piece and no added token holds side by side. No merge can then join the two
    characters (it would make such a piece), no added token spans them, and BPE's merges on
    either side are the same as on that side alone; characters outside the vocabulary fall
    back to bytes one character at a time. The pairs of the vocabulary's pieces are read from
    the cache after the first run (:func:`vocabulary_pairs`); those of the added tokens, and
    which added tokens count, are read from the tokenizer every time."""
    backend = tokenizer.backend
    if backend.model.fuse_unk and not backend.model.byte_fallback:
        return None  # unknown characters side by side would become one token
    skip_special = getattr(backend, "encode_special_tokens", False)
    added = [  # special tokens in the text are plain text when encode_special_tokens is set
        t for t in backend.get_added_tokens_decoder().values() if not (t.special and skip_special)
    ]
    if any(t.normalized or t.lstrip or t.rstrip or t.single_word for t in added):
        return None  # matched in the normalised text, or taking white space with them
    pairs = vocabulary_pairs(tokenizer) | _ascii_pairs(t.content for t in added)
    joins = [[True] * 129] + [[True] + [False] * 128 for _ in range(128)]  # 0: not ASCII
    for pair in pairs:  # two characters
        joins[ord(pair[0]) + 1][ord(pair[1]) + 1] = True
    hard = tuple(tuple(not j for j in row) for row in joins)
    return Scheme(None, False, False, EACH, hard)


# the version of vocabulary_pairs' derivation: raise it when a change changes what it finds
PAIRS_VERSION = 1


def vocabulary_pairs(tokenizer: Tokenizer) -> frozenset[str]:
    """The two ASCII characters side by side in some piece of the vocabulary (added tokens
    left out; spaces written " "): 0.35 s to 1 s for Gemma 3's 262,144 pieces, so kept in the
    cache for the next run (:mod:`.vocab_cache`)."""

    def derive() -> frozenset[str]:
        vocab = tokenizer.backend.get_vocab(with_added_tokens=False)
        return _ascii_pairs(p.replace("▁", " ") for p in vocab)

    return vocabulary_fact(
        tokenizer, "ascii-pairs", PAIRS_VERSION, derive, sorted, _pairs_from_json
    )


def _ascii_pairs(texts: Iterable[str]) -> frozenset[str]:
    return frozenset(
        x + y for text in texts for x, y in pairwise(text) if x < "\x80" and y < "\x80"
    )


def _pairs_from_json(value: object) -> frozenset[str]:
    if not isinstance(value, list):
        raise ValueError("not a list of pairs")
    pairs = frozenset(value)
    if not all(isinstance(p, str) and len(p) == 2 and p.isascii() for p in pairs):
        raise ValueError("not a list of pairs of ASCII characters")
    return pairs


def _split_of(steps: list[dict]) -> tuple[str, bool] | None:
    """The split expression of these pre-tokenizer steps and whether digits go apart first,
    when they are one of: an expression of :data:`PATTERNS` then the byte mapping; the
    byte mapping with its own (GPT-2's) expression; either after ``Digits`` one a piece."""
    digits_apart = bool(steps) and steps[0] == {"type": "Digits", "individual_digits": True}
    if digits_apart:
        steps = steps[1:]
    byte_level = steps[-1] if steps else {}
    if byte_level.get("type") != "ByteLevel" or byte_level.get("add_prefix_space"):
        return None
    if len(steps) == 1 and byte_level.get("use_regex"):
        return GPT2_PATTERN, digits_apart
    if len(steps) != 2 or byte_level.get("use_regex"):
        return None
    split = steps[0]
    pattern = (split.get("pattern") or {}).get("Regex")
    if (
        split.get("type") != "Split"
        or pattern not in PATTERNS
        or split.get("behavior") != "Isolated"
        or split.get("invert")
    ):
        return None
    return pattern, digits_apart
