"""Exact counts of a concatenation for BPE behind a regex pre-tokenizer, or on the whole text.

The tokenizers :mod:`.hard_pairs` covers never join two characters of a *hard pair* into one
piece, and the pieces on either side of one do not depend on the other side (a split
expression may look one character past a match, which a summary keeps). A text is thus
summarised by its count, the text up to just past its first hard pair with the count of the
pieces before that pair, and the text after its last hard pair with its count. A seam
re-splits only the few characters between the nearest hard pairs on either side, and nothing
at all when the seam itself is a hard pair nothing looks past. Added tokens (a chat template's
``<|im_start|>``) are split off before anything else and are one token each: a text holding
them is summarised by the texts before the first and after the last. Without a split
expression (Gemma's BPE on the whole text) the tokenizer counts each region whole.

With an NFC normaliser a seam is folded only when NFC cannot compose across it; a sample with
such a seam is counted whole by the engine.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from mosaic_it.budget.folding import FoldingBase, SeamError
from mosaic_it.budget.hard_pairs import UNKNOWN, pretoken_scheme
from mosaic_it.budget.literals import literal_pattern
from mosaic_it.budget.tokenizer import Tokenizer

__all__ = ["PieceCounter", "PieceSummary"]

# (count, head, count of head's pieces before its hard pair, tail, tail's count, kind)
PieceSummary = tuple[int, str, int, str, int, int]
# kinds: no hard pair inside (the text joins the region around it), a hard pair inside, an added
# token inside (the tokenizer splits the text there before anything else: head and tail are
# the texts before the first and after the last, counted whole)
WHOLE, CUT, SPECIAL = 0, 1, 2
EMPTY: PieceSummary = (0, "", 0, "", 0, WHOLE)
MAX_CACHE = 400_000  # entries in each cache before it starts again (counts never depend on it)


class _Uncounted(Exception):
    """A text the tokenizer has not counted yet, met while gathering (see summarize_many)."""


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
        self.scheme = scheme
        self._hard = scheme.hard
        self._classes = scheme.classes
        self._apart = scheme.apart()
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
        # while summarize_many gathers: the texts the tokenizer must count (None otherwise)
        self._gathering: set[str] | None = None
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
            # at one position the longest added token wins, as in tokenizers
            self._specials = literal_pattern(t.content for t in added)

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
                if self._gathering is not None:
                    self._gathering.add(text)
                    raise _Uncounted(text)
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
        hard, classes = self._hard, self._classes
        prev = classes[ord(text[0])] if text[0] < "\x80" else UNKNOWN
        for i in range(1, len(text)):
            ch = text[i]
            cls = classes[ord(ch)] if ch < "\x80" else UNKNOWN
            if hard[prev][cls]:
                return i
            prev = cls
        return None

    def _last_cut(self, text: str) -> int | None:
        hard, classes = self._hard, self._classes
        nxt = classes[ord(text[-1])] if text[-1] < "\x80" else UNKNOWN
        for i in range(len(text) - 1, 0, -1):
            ch = text[i - 1]
            cls = classes[ord(ch)] if ch < "\x80" else UNKNOWN
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

    def summarize_many(self, texts: Sequence[str]) -> list[PieceSummary]:
        """:meth:`summarize` of each text. Without a pre-tokenizer every text a summary needs
        is tokenized whole, one call each; here the texts are summarised in rounds instead,
        each round gathering the texts not counted yet and counting them in one call (a
        summary needs a few: its pieces, then its edges)."""
        summaries: dict[str, PieceSummary] = {}
        pending = list(dict.fromkeys(texts))
        while pending and self._split is None:
            gathered: set[str] = set()
            left: list[str] = []
            self._gathering = gathered
            try:
                for t in pending:
                    try:
                        summaries[t] = self.summarize(t)
                    except _Uncounted:
                        left.append(t)
            finally:
                self._gathering = None
            new = sorted(gathered)
            if len(self._texts) + len(new) > MAX_CACHE:
                self._texts = {}
            self._texts.update(zip(new, self.tokenizer.count_batch(new)))
            pending = left
        for t in pending:  # with a pre-tokenizer: its pieces are counted by the model alone
            summaries[t] = self.summarize(t)
        return [summaries[t] for t in texts]

    def _summarize_normal(self, text: str, total: int | None) -> PieceSummary:
        """:meth:`summarize` of a normalised text without added tokens."""
        if total is None:
            total = self._total(text)
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
        (they repeat like words), and most texts are cut by ``str.split(" ")`` alone; a text
        with a space no cut can be made before (after a space, a line break, a non-ASCII
        character, or at its start) is cut before the other spaces.
        """
        numbers: list[int] = []
        summaries: list[PieceSummary] = []
        specials, total_of = self._specials, self._total
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
            total = total_of(t)
            numbers.append(total)
            summaries.append(self._summarize_normal(t, total))
        return numbers, summaries

    def _total(self, t: str) -> int:
        """The count of a non-empty normalised text without added tokens, from its segments
        (see :meth:`count_texts`)."""
        spaced, first = self._spaced, self._first
        if len(spaced) > MAX_CACHE or len(first) > MAX_CACHE:
            spaced, first = self._spaced, self._first = {}, {}
        if t[0] == " " or self._odd_space.search(t):  # a space no cut can be made before
            pieces = self._cut.split(t)  # cut only before the other spaces
        else:
            pieces = t.split(" ")
        try:
            return first[pieces[0]] + sum(map(spaced.__getitem__, pieces[1:]))
        except KeyError:
            if pieces[0] not in first:
                first[pieces[0]] = self._count_all(pieces[0])
            for piece in pieces[1:]:
                if piece not in spaced:
                    spaced[piece] = self._count_all(" " + piece)
            return first[pieces[0]] + sum(map(spaced.__getitem__, pieces[1:]))

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
        classes, apart_pairs, nfc = self._classes, self._apart, self._nfc
        for count, head, head_count, tail, tail_count, kind in parts:
            if kind == SPECIAL:
                # the split stops at the part's first added token: the region and the part's
                # head are one text, counted whole; the part's tail starts a new region
                if nfc and region and head and not self._seam_safe(region[-1], head[0]):
                    raise SeamError(f"NFC may compose {region[-1]!r} with {head[0]!r}")
                total += self._segment(region + head) - region_count + (count - head_count)
                region, region_count = tail, tail_count
                continue
            if not head:
                continue
            apart = True  # nothing before the part
            if region:
                left, right = region[-1], head[0]
                if nfc and not self._seam_safe(left, right):
                    raise SeamError(f"NFC may compose {left!r} with {right!r}")
                apart = apart_pairs[classes[ord(left)] if left < "\x80" else UNKNOWN][
                    classes[ord(right)] if right < "\x80" else UNKNOWN
                ]
            if apart:
                # a hard pair at the seam that nothing looks past: the region keeps its pieces
                # and the part keeps its own, so nothing is counted again
                total += count
                region, region_count = tail, tail_count
                continue
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
