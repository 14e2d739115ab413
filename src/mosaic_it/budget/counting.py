"""Exact token counts of a concatenation without tokenizing it: word-local tokenizers.

Llama-family SentencePiece BPE models (the bundled one included) run BPE over the whole text,
with no pre-tokenizer, after writing spaces as "▁" and prepending one "▁". Their pieces hold
"▁" only as a leading run and no "\\n" except the byte piece ``<0x0A>``. So no token can cross
the start of a run of spaces that follows another character, nor either side of a newline:
the text splits into *words* (``\\n``, or spaces followed by other characters) that are
tokenized independently, and the count of a text is the sum of its words' counts.

A text is then summarised by ``(total, head, tail, single)``: its count in the middle of a
longer text, its first and last words, and whether it is one word. Joining two summaries only
needs the count of the one word that may span the seam, or of the few characters around the
seam that no cut divides (see :meth:`WordCounter.fold_known`). Record texts are never tokenized
whole: a text's count is the sum of its words' counts, and only words not seen before are
tokenized (:meth:`WordCounter.count_texts`), several times faster than one tokenizer pass.
Each sample's exact count is folded from the summaries of its parts, in microseconds.

:func:`.word_local.supports` checks the properties above on the tokenizer itself (its scan of
every piece, :func:`.word_local.vocabulary_spans`, is kept in the cache for the next run);
byte-level BPE tokenizers are folded by :mod:`.pretokens` where they can be, and samples are
tokenized whole otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mosaic_it.budget.folding import FoldingBase, WordCount
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.budget.word_local import word_locality

WORD = re.compile(r"\n| *[^ \n]+| +")
WordSummary = tuple[int, str, str, bool]  # (count in context, first word, last word, one word)
EMPTY: WordSummary = (0, "", "", True)
SMALL_BATCH = 64
MAX_SPANS = 48  # pieces looked at for one pair of characters before the tokenizer is asked
# the word caches are cleared when they reach this size: memory stays flat over millions of
# samples (counts never depend on what is cached, only the time does)
MAX_WORDS = 400_000


class WordCounter(FoldingBase):
    """Folds exact counts from word summaries; one per tokenizer and run. Implements
    :class:`.folding.FoldingCounter` and :class:`.folding.SharedCache`."""

    lead = " "  # stands for the "▁" the tokenizer prepends to a whole text
    shape = "issb"  # a summary: count, first word, last word, one word

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__(tokenizer, EMPTY)
        self._words: dict[str, int] = {"\n": 1}
        self._newline = tokenizer.count("\n")  # the prepended "▁" and the newline byte
        # counts of the space-free pieces of texts (see count_texts): after a space, and first
        self._spaced: dict[str, int] = {}
        self._first: dict[str, int] = {}
        locality = word_locality(tokenizer)
        self._spans = locality.spans if locality is not None else None

    # --------------------------------------------------------------- words

    def prime(
        self, words: Sequence[str], journal: list[WordCount] | None = None, *, cut: bool = False
    ) -> None:
        """Count many words in one batched call (a few, one by one: a parallel batch has a
        start-up cost of milliseconds). A word that splits where no piece spans (see
        :meth:`split`) is counted from its parts, most of which are known already; in a big
        batch only with ``cut`` (words made at seams, such as an answer's last word and a tag:
        their parts are mostly known). The words counted are added to ``journal``, if given."""
        self._bound()
        known = self._words
        missing = sorted({w for w in words if w not in known})
        whole: list[str] = []  # words (and parts) the tokenizer must count
        split: list[tuple[str, list[str]]] = []
        for w in missing:
            # a big batch costs the tokenizer less per word than finding where words split
            parts = self.split(w) if cut or len(missing) < SMALL_BATCH else [w]
            if len(parts) == 1:
                whole.append(w)
            else:
                split.append((w, parts))
                whole += [p for p in parts if p not in known]
        whole = sorted(set(whole))
        texts = ["\n" + w for w in whole]
        if len(texts) < SMALL_BATCH:
            counts = [self.tokenizer.count(t) for t in texts]
        else:
            counts = self.tokenizer.count_batch(texts)
        learned = [(w, c - self._newline) for w, c in zip(whole, counts)]
        known.update(learned)  # no reset in between: all of them stay
        derived = [(w, sum(known[p] for p in parts)) for w, parts in split]
        known.update(derived)
        if journal is not None:
            journal += learned + derived

    def split(self, w: str) -> list[str]:
        """``w`` cut where no vocabulary piece holds the two characters that meet (see
        :meth:`cuts_at`): no BPE merge crosses such a point, so the word's count is the sum of
        its parts' counts."""
        spans = self._spans
        if spans is None or len(w) < 2:
            return [w]
        # only where no piece holds the pair at all: quick, and finds most of the cuts
        cuts = [i for i in range(1, len(w)) if w[i - 1 : i + 1] not in spans]
        if not cuts:
            return [w]
        return [w[a:b] for a, b in zip([0, *cuts], [*cuts, len(w)])]

    def cuts_at(self, w: str, i: int) -> bool:
        """Whether no vocabulary piece lies in ``w`` across the point before ``w[i]``.

        A merge that crossed it would make such a piece, so BPE tokenizes the two sides apart.
        """
        spans = self._spans
        if spans is None:
            return False
        found = spans.get(w[i - 1 : i + 1])
        if found is None:
            return True
        if len(found) > MAX_SPANS:
            return False  # a common pair: counting the word costs less than looking
        for piece, offset in found:
            start = i - 1 - offset
            if start >= 0 and w.startswith(piece, start):
                return False
        return True

    def prime_pack(self, texts: Sequence[str]) -> None:
        """Count in one call every word of these texts (a rule pack's), alone and after a space."""
        words = {w for t in texts for w in WORD.findall(t)}
        self.prime(sorted(words | {" " + w for w in words if not w.startswith((" ", "\n"))}))

    def learn(self, counted: Sequence[WordCount]) -> None:
        """Take word counts made elsewhere (by a worker process with the same tokenizer)."""
        self._bound()
        self._words.update(counted)

    def _bound(self) -> None:
        if len(self._words) > MAX_WORDS:
            self._words = {"\n": 1}

    def word(self, w: str) -> int:
        n = self._words.get(w)
        if n is None:
            self.prime([w])
            n = self._words[w]
        return n

    # --------------------------------------------------------------- summaries

    @staticmethod
    def edges(text: str) -> tuple[str, str, bool]:
        """First and last word of a non-empty text, and whether it is a single word."""
        first = WORD.match(text)
        assert first is not None
        head = first.group()
        if first.end() == len(text):
            return head, head, True
        # the last word: scan back from the end
        if text.endswith("\n"):
            return head, "\n", False
        stripped = text.rstrip(" ")
        if len(stripped) < len(text):  # trailing spaces form their own word, whatever precedes
            return head, text[len(stripped) :], False
        cut = max(text.rfind("\n"), -1)
        last_space = text.rfind(" ")
        if last_space > cut:
            start = last_space
            while start > 0 and text[start - 1] == " ":
                start -= 1
            if start > cut:
                return head, text[start:], False
        return head, text[cut + 1 :], False

    def summarize(self, text: str, standalone: int | None = None) -> WordSummary:
        """The summary of a text; ``standalone`` is its count tokenized alone, when known."""
        if not text:
            return EMPTY
        if "▁" in text:
            text = text.replace("▁", " ")  # the normalizer makes both the same symbol
        head, tail, single = self.edges(text)
        if standalone is None:
            total = sum(self.word(w) for w in WORD.findall(text))
        elif head == "\n":
            total = standalone - self.word(" ")  # alone, the prepended "▁" was its own word
        else:
            total = standalone - self.word(" " + head) + self.word(head)
        return total, head, tail, single

    def fold_known(
        self, parts: Sequence[WordSummary], missing: set[str]
    ) -> tuple[int, list[tuple[str, str, str]]]:
        """The count of the concatenation of ``parts``, as far as words already counted tell.

        Returns the count and the seams still open: ``(span, left, right)`` where a text not
        counted yet lies around the seam (added to ``missing``). Prime them and :meth:`settle`
        the count. One pass, no tokenizer call: it runs for every sample.

        Where the last word before a seam and the first after it make one word, only the few
        characters between the nearest cuts on either side (see :meth:`cuts_at`) are counted
        again: BPE tokenizes the word apart at its cuts, so the word's count is its count with
        the seam unjoined, less ``left`` and ``right`` (the halves between those cuts and the
        seam), plus ``span`` (the two halves joined). Those spans recur (a tag and the letters
        next to it) where the words do not (every answer's last word).
        """
        words, cuts_at = self._words, self.cuts_at
        total = 0
        tail = ""  # the last word of what is folded so far
        open_seams: list[tuple[str, str, str]] = []
        for count, head, p_tail, single in parts:
            if not head:
                continue
            total += count
            if not tail:
                tail = p_tail
                continue
            left, right = tail[-1], head[0]
            if right == "\n" or left == "\n" or (right == " " and left != " "):
                tail = p_tail  # no token spans this seam
                continue
            # the last word before the seam and the first after it are one word here
            w = tail + head
            n_w = words.get(w)
            if n_w is not None:  # a word met before (a label and a common first word)
                n_tail, n_head = words.get(tail), words.get(head)
                if n_tail is not None and n_head is not None:
                    total += n_w - n_tail - n_head
                    tail = w if single else p_tail
                    continue
            seam = len(tail)
            if not cuts_at(w, seam):
                # a piece may lie across the seam: the span between the nearest cuts around it
                start = seam - 1
                while start and not cuts_at(w, start):
                    start -= 1
                end, size = seam + 1, len(w)
                while end < size and not cuts_at(w, end):
                    end += 1
                span, l_half, r_half = w[start:end], w[start:seam], w[seam:end]
                n_span, n_left, n_right = words.get(span), words.get(l_half), words.get(r_half)
                if n_span is None or n_left is None or n_right is None:
                    missing.update(
                        x
                        for x, n in ((span, n_span), (l_half, n_left), (r_half, n_right))
                        if n is None
                    )
                    open_seams.append((span, l_half, r_half))
                else:
                    total += n_span - n_left - n_right
            # else: no piece lies across the seam, so no merge spans it: BPE splits the word
            # there and its count is the two halves' counts
            tail = w if single else p_tail
        return total, open_seams

    def settle(self, total: int, open_seams: Sequence[tuple[str, str, str]]) -> int:
        """A count from :meth:`fold_known` with its open seams closed (their texts primed:
        any that a cache reset lost in between is counted again here)."""
        word = self.word
        return total + sum(word(s) - word(left) - word(right) for s, left, right in open_seams)

    def fold(self, parts: Sequence[WordSummary]) -> int:
        """The count of the concatenation of ``parts``, counting the seam words it needs."""
        missing: set[str] = set()
        total, open_seams = self.fold_known(parts, missing)
        if open_seams:
            self.prime(list(missing), cut=True)
        return self.settle(total, open_seams)

    def fold_many(self, samples: Sequence[Sequence[Sequence[WordSummary]]]) -> list[int | None]:
        """Each sample's count (the sum of its sequences' folds): the seam words none has
        counted yet are counted in one batched call for all of them."""
        missing: set[str] = set()
        known = [[self.fold_known(seq, missing) for seq in sample] for sample in samples]
        if missing:
            self.prime(list(missing), cut=True)
        settle = self.settle
        return [sum(settle(*fold) for fold in folds) for folds in known]

    def count_texts(
        self, texts: Sequence[str], journal: list[WordCount] | None = None
    ) -> tuple[list[int], list[WordSummary]]:
        """Each text's count tokenized alone and its summary, from its words alone; the words
        it counts are added to ``journal``, when given.

        A text's count is the sum of its words' counts, so only the words never seen before are
        tokenized (in one batched call); the text itself never is. Word counts repeat across
        records, which is what makes this several times faster than tokenizing every text.

        Most texts are not even cut into words: where every space is a single one between two
        other characters, the pieces ``text.split(" ")`` are runs of whole words, so the count
        is the first piece's plus each later piece's count after a space, kept per piece.
        """
        self._bound()  # before looking for missing words: prime() then keeps every one
        if len(self._spaced) > MAX_WORDS or len(self._first) > MAX_WORDS:
            self._spaced, self._first = {}, {}
        spaced, first = self._spaced, self._first
        spaced_get, first_get = spaced.__getitem__, first.__getitem__
        edges, alone = self.edges, self._alone
        standalone: list[int] = []
        summaries: list[WordSummary] = []
        later: list[tuple[int, str, list[str] | None]] = []  # texts with something uncounted
        for t in texts:
            if "▁" in t:
                t = t.replace("▁", " ")  # the normalizer makes both the same symbol
            if not t:
                standalone.append(0)
                summaries.append(EMPTY)
                continue
            pieces = t.split(" ")
            simple = "" not in pieces  # no space at either end, none next to another
            if simple:
                try:
                    total = first_get(pieces[0]) + sum(map(spaced_get, pieces[1:]))
                    head, tail, single = edges(t)
                    standalone.append(alone(total, head))
                    summaries.append((total, head, tail, single))
                    continue
                except KeyError:
                    pass  # a piece or word not counted yet
            later.append((len(standalone), t, pieces if simple else None))
            standalone.append(0)
            summaries.append(EMPTY)
        if later:
            self._count_new(later, standalone, summaries, journal)
        return standalone, summaries

    def _alone(self, total: int, head: str) -> int:
        """A text's count tokenized alone, from its count in context and its first word."""
        if head == "\n":  # alone, the prepended "▁" is a word of its own
            return total + self._words[" "]
        return total - self._words[head] + self._words[" " + head]

    def _count_new(
        self,
        later: list[tuple[int, str, list[str] | None]],
        standalone: list[int],
        summaries: list[WordSummary],
        journal: list[WordCount] | None,
    ) -> None:
        """:meth:`count_texts` for the texts with words or pieces not seen before (``later``:
        where each goes, the text, its pieces if simple): their new words in one call."""
        findall, known = WORD.findall, self._words
        split = [findall(t) for _, t, _ in later]
        missing: set[str] = set()
        for words in split:
            missing.update(words)
            missing.add(" " if words[0] == "\n" else " " + words[0])
        self.prime([w for w in missing if w not in known], journal)
        get, spaced, first = known.__getitem__, self._spaced, self._first
        for (i, t, pieces), words in zip(later, split):
            total = sum(map(get, words))
            standalone[i] = self._alone(total, words[0])
            summaries[i] = (total, words[0], words[-1], len(words) == 1)
            if pieces is not None:  # keep the pieces' counts for the texts still to come
                if pieces[0] not in first:
                    first[pieces[0]] = sum(map(get, findall(pieces[0])))
                for p in pieces[1:]:
                    if p not in spaced:
                        spaced[p] = sum(map(get, findall(" " + p)))
