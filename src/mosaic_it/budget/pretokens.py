"""Exact counts of a concatenation for BPE behind a regex pre-tokenizer, or on the whole text.

Byte-level BPE tokenizers behind GPT-2's (SmolLM2's, after a digit split), Qwen2's, Llama-3's,
Tekken's or o200k's split expression cut text into pieces with a regular expression and run
BPE on each piece alone, so a text's count is the sum of its pieces' counts. Joining two texts
changes only the pieces near the seam; how near is told by *hard pairs*: two adjacent characters
that no alternative of the expression can take in one piece, not even part way (a letter then a
non-letter, a digit then anything for Qwen2, a newline then a non-space character, ...). No
attempt to match consumes across a hard pair, and none looks more than one character past what
it consumed, so the pieces before a hard pair are the same whatever text follows it, and those
after it are the same whatever text precedes it.

A text is thus summarised by its count, the text up to just past its first hard pair with the
count of the pieces before that pair, and the text after its last hard pair with its count. A
seam re-splits only the few characters between the nearest hard pairs on either side. Added
tokens (a chat template's ``<|im_start|>``) are split off before anything else and are one token
each: a text holding them is summarised by the texts before the first and after the last.

BPE run on the whole text with spaces written "▁" and nothing prepended (Gemma's) has hard pairs
too: two characters no vocabulary piece and no added token holds side by side, which no merge
can join (see :func:`_vocabulary_scheme`); the same summaries and folding then apply, with the
tokenizer counting each region whole.

The reasoning is made for the expressions in :data:`PATTERNS` only, and characters are sorted into
classes only when they are ASCII: any pair with another character is taken as one that can join,
which only makes the re-split stretch longer. With an NFC normaliser a seam is folded only when
NFC cannot compose across it; a sample with such a seam is counted whole by the engine.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from tokenizers import Regex, pre_tokenizers
from tokenizers.models import BPE

from mosaic_it.budget.folding import FoldingBase, SeamError
from mosaic_it.budget.gguf import (
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    O200K_PATTERN,
    QWEN2_PATTERN,
    TEKKEN_PATTERN,
)
from mosaic_it.budget.tokenizer import Tokenizer

# (count, head, count of head's pieces before its hard pair, tail, tail's count, kind)
PieceSummary = tuple[int, str, int, str, int, int]
# kinds: no hard pair inside (the text joins the region around it), a hard pair inside, an added
# token inside (the tokenizer splits the text there before anything else: head and tail are
# the texts before the first and after the last, counted whole)
WHOLE, CUT, SPECIAL = 0, 1, 2
EMPTY: PieceSummary = (0, "", 0, "", 0, WHOLE)
MAX_CACHE = 400_000  # entries in each cache before it starts again (counts never depend on it)

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

# character classes (ASCII only; everything else is UNKNOWN)
UNKNOWN, LETTER, DIGIT, NEWLINE, SPACE, TAB, PUNCT = range(7)


def _classes() -> list[int]:
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
    return table


CLASS = _classes()


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
    white = (SPACE, TAB, NEWLINE)
    if rules == GPT2:
        return (
            (b == LETTER and a in (LETTER, SPACE, PUNCT))
            or (b == DIGIT and a in (DIGIT, SPACE))
            or (b == PUNCT and a in (PUNCT, SPACE))
            or (a in white and b in white)
        )
    return (
        (b == LETTER and a in (LETTER, SPACE, TAB, PUNCT))
        or (rules == O200K and a == LETTER and b == PUNCT)
        or (rules in (TEKKEN, O200K) and a == NEWLINE and b == PUNCT)
        or (rules in (LLAMA3, O200K) and a == DIGIT == b)
        or (a == SPACE and b == PUNCT)
        or (a == PUNCT and b in (PUNCT, NEWLINE))
        or (a in white and b in white)
    )


@dataclass(frozen=True)
class _Scheme:
    """What makes a tokenizer foldable here: its split expression (None: no pre-tokenizer, the
    model runs on the whole normalised text), its normaliser and its hard pairs."""

    pattern: str | None
    digits_apart: bool  # a Digits(individual_digits=True) step runs before the expression
    nfc: bool
    hard: tuple[tuple[bool, ...], ...]  # hard[a][b] for classes a, b

    def describe(self) -> str:
        if self.pattern is None:
            return "BPE on the whole text, cut only where no piece or added token joins"
        name = NAMES[self.pattern]
        extra = ", digits apart" if self.digits_apart else ""
        return f"byte-level BPE, {name} split expression{extra}{', NFC' if self.nfc else ''}"

    def splitter(self) -> pre_tokenizers.PreTokenizer | None:
        """The tokenizer's own pre-tokenization without its byte mapping (pieces, offsets)."""
        if self.pattern is None:
            return None
        split = pre_tokenizers.Split(Regex(self.pattern), behavior="isolated")
        if not self.digits_apart:
            return split
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), split])

    def cuts(self) -> tuple[re.Pattern[str], re.Pattern[str]]:
        """Where counting may cut a text, and a space no cut can be made before (see
        PieceCounter.count_texts): between the ASCII characters of a hard pair whose first is
        no white space (no attempt before it looks past it)."""
        alternatives = []
        before_space = ""
        for a in (LETTER, DIGIT, PUNCT):
            after = "".join(_CHARS[b] for b in range(1, 7) if self.hard[a][b])
            if after:
                alternatives.append(f"(?<=[{_CHARS[a]}])(?=[{after}])")
            if self.hard[a][SPACE]:
                before_space += _CHARS[a]
        cut = re.compile("|".join(alternatives) or "(?!)")
        odd = re.compile(f"(?:^|[^{before_space}]) " if before_space else " ")
        return cut, odd


_INSPECTED: dict[int, tuple[object, _Scheme | None]] = {}


def pretoken_scheme(tokenizer: Tokenizer) -> _Scheme | None:
    """The scheme of a byte-level BPE tokenizer this module can fold, or None (checked once)."""
    known = _INSPECTED.get(id(tokenizer.backend))
    if known is not None and known[0] is tokenizer.backend:
        return known[1]
    result = _check(tokenizer)
    _INSPECTED[id(tokenizer.backend)] = (tokenizer.backend, result)
    return result


def _check(tokenizer: Tokenizer) -> _Scheme | None:
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
    return _Scheme(pattern, digits_apart, normalizer is not None, hard)


# SentencePiece-style BPE with no space prefix (Gemma's): spaces written "▁", nothing prepended
_SPACES_ESCAPED = {
    "type": "Sequence",
    "normalizers": [{"type": "Replace", "pattern": {"String": " "}, "content": "▁"}],
}


def _vocabulary_scheme(tokenizer: Tokenizer) -> _Scheme | None:
    """Hard pairs of BPE run on the whole (space-escaped) text: two classes no vocabulary
    piece and no added token holds side by side. No merge can then join the two characters
    (it would make such a piece), no added token spans them, and BPE's merges on either side
    are the same as on that side alone; characters outside the vocabulary fall back to bytes
    one character at a time."""
    backend = tokenizer.backend
    if backend.model.fuse_unk and not backend.model.byte_fallback:
        return None  # unknown characters side by side would become one token
    skip_special = getattr(backend, "encode_special_tokens", False)
    added = [  # special tokens in the text are plain text when encode_special_tokens is set
        t for t in backend.get_added_tokens_decoder().values() if not (t.special and skip_special)
    ]
    if any(t.normalized or t.lstrip or t.rstrip or t.single_word for t in added):
        return None  # matched in the normalised text, or taking white space with them
    joins = [[False] * 7 for _ in range(7)]
    texts = [p.replace("▁", " ") for p in backend.get_vocab(with_added_tokens=False)]
    texts += [t.content for t in added]
    for text in texts:
        for x, y in pairwise(text):
            joins[CLASS[ord(x)] if x < "\x80" else UNKNOWN][
                CLASS[ord(y)] if y < "\x80" else UNKNOWN
            ] = True
    hard = tuple(tuple(not (joins[a][b] or UNKNOWN in (a, b)) for b in range(7)) for a in range(7))
    return _Scheme(None, False, False, hard)


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


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from bytes to the characters byte-level BPE vocabularies are written in."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


_BYTE_CHARS = str.maketrans({chr(b): c for b, c in _bytes_to_unicode().items()})

# the ASCII characters of each class, as they are written in a character set
_PUNCT = r"!-/:-@\[-`{-~"
_CHARS = {LETTER: "A-Za-z", DIGIT: "0-9", NEWLINE: r"\r\n", SPACE: " ", TAB: r"\t", PUNCT: _PUNCT}


class PieceCounter(FoldingBase):
    """Folds exact counts from piece summaries; one per tokenizer and run (see the module).
    Implements :class:`.folding.FoldingCounter`; its caches are kept per process."""

    lead = ""  # byte-level BPE prepends nothing to a text
    shape = "isisii"  # a summary: see PieceSummary

    def __init__(self, tokenizer: Tokenizer) -> None:
        scheme = pretoken_scheme(tokenizer)
        if scheme is None:
            raise ValueError(f"{tokenizer.name}: not a BPE tokenizer this can fold")
        super().__init__(tokenizer, EMPTY)
        self._hard = scheme.hard
        self._nfc = scheme.nfc
        self._split = scheme.splitter()
        self._cut, self._odd_space = scheme.cuts()
        self._model = tokenizer.backend.model
        self._pieces: dict[str, int] = {}  # piece -> tokens
        self._texts: dict[str, int] = {}  # text -> tokens of all its pieces
        self._regions: dict[str, int] = {}  # text -> tokens of its pieces but the last character's
        self._spaced: dict[str, int] = {}  # piece -> tokens of " " + piece (see count_texts)
        self._first: dict[str, int] = {}  # piece -> tokens of the piece at a text's start
        self._safe: dict[tuple[str, str], bool] = {}
        # added tokens are split off first and are one token each; folded around only when
        # they are matched as written (no normalisation, no white space taken with them)
        added = list(tokenizer.backend.get_added_tokens_decoder().values())
        self._plain_added = all(
            not (t.normalized or t.lstrip or t.rstrip or t.single_word) for t in added
        )
        if self._split is None:
            # no pre-tokenizer: added tokens are in the hard pairs, and need no splitting off
            self._specials, self._plain_added = None, True
        elif added and self._plain_added and self._specials is not None:
            # longest first: at one position the longest added token wins, as in tokenizers
            contents = sorted({t.content for t in added}, key=len, reverse=True)
            self._specials = re.compile("|".join(map(re.escape, contents)))

    def unsafe(self, text: str) -> bool:
        """Added tokens are folded around unless they take white space or are normalised."""
        return not self._plain_added and super().unsafe(text)

    def prime_pack(self, texts: Sequence[str]) -> None:
        """Keep the summaries of a rule pack's texts (pieces are counted as they are met)."""
        for text in texts:
            self.glue(text)

    # --------------------------------------------------------------- counting

    def _piece(self, piece: str) -> int:
        n = self._pieces.get(piece)
        if n is None:
            if len(self._pieces) > MAX_CACHE:
                self._pieces = {}
            n = self._pieces[piece] = len(
                self._model.tokenize(piece.encode("utf-8").decode("latin-1").translate(_BYTE_CHARS))
            )
        return n

    def _count_all(self, text: str) -> int:
        """Tokens of a (normalised) text, from its pieces."""
        n = self._texts.get(text)
        if n is None:
            if len(self._texts) > MAX_CACHE:
                self._texts = {}
            if self._split is None:  # no pre-tokenizer: the model counts the whole text
                n = self._texts[text] = self.tokenizer.count(text)
                return n
            piece = self._piece
            n = self._texts[text] = sum(piece(p) for p, _ in self._split.pre_tokenize_str(text))
        return n

    def _count_before_last(self, text: str) -> int:
        """Tokens of the pieces of ``text`` that start before its last character, whose pair with
        the character before it is hard: those pieces are final whatever follows."""
        n = self._regions.get(text)
        if n is None:
            if len(self._regions) > MAX_CACHE:
                self._regions = {}
            end, piece = len(text) - 1, self._piece
            if self._split is None:  # the pair before the last character is hard
                n = self._regions[text] = self._count_all(text[:end])
                return n
            n = self._regions[text] = sum(
                piece(p) for p, (start, _) in self._split.pre_tokenize_str(text) if start < end
            )
        return n

    def _first_cut(self, text: str) -> int | None:
        """The first position i (0 < i < len) where text[i - 1], text[i] is a hard pair."""
        hard = self._hard
        prev = CLASS[ord(text[0])] if text[0] < "\x80" else UNKNOWN
        for i in range(1, len(text)):
            ch = text[i]
            cls = CLASS[ord(ch)] if ch < "\x80" else UNKNOWN
            if hard[prev][cls]:
                return i
            prev = cls
        return None

    def _last_cut(self, text: str) -> int | None:
        hard = self._hard
        nxt = CLASS[ord(text[-1])] if text[-1] < "\x80" else UNKNOWN
        for i in range(len(text) - 1, 0, -1):
            ch = text[i - 1]
            cls = CLASS[ord(ch)] if ch < "\x80" else UNKNOWN
            if hard[cls][nxt]:
                return i
            nxt = cls
        return None

    def _normal(self, text: str) -> str:
        if self._nfc and not text.isascii():
            return unicodedata.normalize("NFC", text)
        return text

    def summarize(self, text: str, total: int | None = None) -> PieceSummary:
        """Summary of a text; ``total`` is its count, when known."""
        if not text:
            return EMPTY
        if self._specials is not None and self._specials.search(text):
            return self._summarize_added(text)
        return self._summarize_normal(self._normal(text), total)

    def _summarize_normal(self, text: str, total: int | None) -> PieceSummary:
        """:meth:`summarize` of a normalised text without added tokens."""
        if total is None:
            total = self._count_all(text)
        first = self._first_cut(text)
        if first is None:
            return total, text, total, text, total, WHOLE
        last = self._last_cut(text)
        assert last is not None
        head, tail = text[: first + 1], text[last:]
        return total, head, self._count_before_last(head), tail, self._count_all(tail), CUT

    def _summarize_added(self, text: str) -> PieceSummary:
        """A text with added tokens: each is one token, the texts between are counted apart."""
        assert self._specials is not None
        segments = self._specials.split(text)  # the texts around the added tokens
        head, *middle, tail = (self._normal(t) for t in segments)
        total = len(segments) - 1 + sum(self._segment(t) for t in middle)
        head_count, tail_count = self._segment(head), self._segment(tail)
        return total + head_count + tail_count, head, head_count, tail, tail_count, SPECIAL

    def count_texts(self, texts: Sequence[str]) -> tuple[list[int], list[PieceSummary]]:
        """Each text's count and its summary, from the counts of its segments.

        A text is cut where the split can never join across: before a space that follows an
        ASCII letter, digit or punctuation mark (a hard pair whose first character is no white
        space, so no attempt before it looks past it). The segments are counted apart, each once
        (they repeat like words), and most texts are cut by ``str.split(" ")`` alone.
        """
        if len(self._spaced) > MAX_CACHE or len(self._first) > MAX_CACHE:
            self._spaced, self._first = {}, {}
        spaced, first, segment = self._spaced, self._first, self._segment
        spaced_get, first_get = spaced.__getitem__, first.__getitem__
        numbers: list[int] = []
        summaries: list[PieceSummary] = []
        specials = self._specials
        for t in texts:
            if specials is not None and specials.search(t):
                summary = self._summarize_added(t)
                numbers.append(summary[0])
                summaries.append(summary)
                continue
            t = self._normal(t)
            if not t:
                numbers.append(0)
                summaries.append(EMPTY)
                continue
            if self._odd_space.search(t):  # a space no cut can be made before: cut elsewhere
                total = sum(map(segment, self._cut.split(t)))
            else:
                pieces = t.split(" ")
                try:
                    total = first_get(pieces[0]) + sum(map(spaced_get, pieces[1:]))
                except KeyError:
                    if pieces[0] not in first:
                        first[pieces[0]] = self._count_all(pieces[0])
                    for piece in pieces[1:]:
                        if piece not in spaced:
                            spaced[piece] = self._count_all(" " + piece)
                    total = first_get(pieces[0]) + sum(map(spaced_get, pieces[1:]))
            numbers.append(total)
            summaries.append(self._summarize_normal(t, total))
        return numbers, summaries

    def _segment(self, text: str) -> int:
        return self._count_all(text) if text else 0

    # --------------------------------------------------------------- folding

    def _seam_safe(self, left: str, right: str) -> bool:
        """Whether NFC leaves the seam between these two characters alone."""
        if not self._nfc or right < "\x80":
            return True
        key = (left, right)
        ok = self._safe.get(key)
        if ok is None:
            ok = self._safe[key] = unicodedata.combining(right) == 0 and (
                unicodedata.normalize("NFC", left + right) == left + right
            )
        return ok

    def fold(self, parts: Sequence[PieceSummary]) -> int:
        """The count of the concatenation of ``parts``.

        Raises :class:`SeamError` where NFC could compose across a seam.
        """
        total = 0
        region, region_count = "", 0  # the text after the last hard pair, and its count
        for count, head, head_count, tail, tail_count, kind in parts:
            if kind == SPECIAL:
                # the split stops at the part's first added token: the region and the part's
                # head are one text, counted whole; the part's tail starts a new region
                if region and head and not self._seam_safe(region[-1], head[0]):
                    raise SeamError(f"NFC may compose {region[-1]!r} with {head[0]!r}")
                total += self._segment(region + head) - region_count + (count - head_count)
                region, region_count = tail, tail_count
                continue
            if not head:
                continue
            if region and not self._seam_safe(region[-1], head[0]):
                raise SeamError(f"NFC may compose {region[-1]!r} with {head[0]!r}")
            if kind == CUT:
                # re-split the region with the part's head: the pieces before the head's hard
                # pair are final, and the part's own pieces after it stay as they were
                total += self._count_before_last(region + head) - region_count
                total += count - head_count
                region, region_count = tail, tail_count
                continue
            # no hard pair inside the part: it joins the region, which is counted again
            region += head
            n = self._count_all(region)
            total += n - region_count
            region_count = n
            last = self._last_cut(region)
            if last is not None and len(region) > 64:
                region = region[last:]
                region_count = self._count_all(region)
        return total

    def fold_many(self, samples: Sequence[Sequence[Sequence[PieceSummary]]]) -> list[int | None]:
        """Each sample's count, None for a sample with a seam NFC could compose across."""
        counts: list[int | None] = []
        for sample in samples:
            try:
                counts.append(sum(map(self.fold, sample)))
            except SeamError:
                counts.append(None)
        return counts
