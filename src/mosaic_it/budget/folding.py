"""The folding-counter interface: exact token counts of a concatenation, from summaries.

A folding counter summarises each text once (its count and what lies at its edges) and folds
the summaries of a sample's parts into the sample's exact count, without tokenizing the sample.
Two counters implement it: :class:`.counting.WordCounter` (word-local SentencePiece BPE) and
:class:`.pretokens.PieceCounter` (BPE behind a split expression).
:mod:`mosaic_it.engine.sample_count` picks the one a tokenizer allows and is the only user of
this interface.

A counter whose cache a forked worker can extend (the word counter: each word is counted once,
wherever) also implements :class:`SharedCache`; the other keeps its caches per process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from array import array
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from mosaic_it.budget.literals import literal_pattern
from mosaic_it.budget.tokenizer import Tokenizer

# a counter's summary of one text: a tuple whose fields :attr:`FoldingCounter.shape` describes
Summary = tuple[Any, ...]
WordCount = tuple[str, int]  # a word and its count, as a worker learned it
# caches are cleared when they reach this size: memory stays flat over millions of samples
# (counts never depend on what is cached, only the time does)
MAX_GLUE = 50_000


# texts of summaries kept as string objects, and findable by content; see TextTable
MAX_LISTED = 200_000
MAX_INDEXED = 400_000


class TextTable:
    """Small integers standing for the texts summaries hold (the first and last words of the
    records' texts), so that arrays can hold them instead, and the texts they stand for.

    The first :data:`MAX_LISTED` texts are kept as string objects (words repeat: most runs
    meet a few thousand); later ones as UTF-8 bytes in one buffer, a few bytes each, where a
    string object takes some 60 and a run of ten million records with words of their own
    meets tens of millions. Which number a text has is looked up in an index that is bounded
    too: past :data:`MAX_INDEXED` texts it keeps only the listed ones, and a later text met
    again gets a second number, which stands for the same text.
    """

    def __init__(self) -> None:
        self.listed: list[str] = [""]
        self._index: dict[str, int] = {"": 0}
        self._bytes = bytearray()
        self._ends = array("q", [0])  # where each text kept as bytes ends in _bytes

    def number(self, text: str) -> int:
        """The number standing for ``text``."""
        i = self._index.get(text)
        if i is None:
            if len(self._index) >= MAX_INDEXED:
                self._index = {t: n for n, t in enumerate(self.listed)}
            listed = self.listed
            if len(listed) < MAX_LISTED:
                i = len(listed)
                listed.append(text)
            else:
                i = MAX_LISTED + len(self._ends) - 1
                self._bytes += text.encode("utf-8", "surrogatepass")
                self._ends.append(len(self._bytes))
            self._index[text] = i
        return i

    def text(self, number: int) -> str:
        """The text ``number`` stands for."""
        if number < MAX_LISTED:
            return self.listed[number]
        j = number - MAX_LISTED
        return self._bytes[self._ends[j] : self._ends[j + 1]].decode("utf-8", "surrogatepass")


class SeamError(ValueError):
    """A seam a counter cannot fold (NFC could compose across it): count the sample whole."""


class FoldingCounter(Protocol):
    """Exact counts of concatenated texts, folded from the texts' summaries."""

    # what the tokenizer prepends to a whole text, written as text (the "▁" of SentencePiece
    # models, which the counters write " "), or ""
    lead: str
    # one letter a field of a summary: i (a count), s (a text), b (a flag); summaries are kept
    # in arrays of that shape once a run's records are spooled to disk
    shape: str
    texts: TextTable  # the texts summaries hold, by the numbers arrays hold instead

    def unsafe(self, text: str) -> bool:
        """Whether text holds a special-token string that stops folding: count it whole."""
        ...

    def glue(self, text: str) -> Summary:
        """The summary of a text that recurs (a label, a separator, a template's text), kept."""
        ...

    def glue_many(self, texts: Sequence[str]) -> None:
        """Keep the summaries of these texts, as :meth:`glue` would, made together."""
        ...

    def glue_each(self, parts: Sequence[str | int], summaries: Sequence[Summary]) -> list[Summary]:
        """``parts`` with each text (a str) replaced by its :meth:`glue` summary, and each
        number n by ``summaries[n]``."""
        ...

    def prime_pack(self, texts: Sequence[str]) -> None:
        """Prepare for texts a rule pack writes again and again (counted ahead, or kept)."""
        ...

    def count_texts(self, texts: Sequence[str]) -> tuple[list[int], list[Summary]]:
        """Each text's count tokenized alone, and its summary."""
        ...

    def fold(self, parts: Sequence[Summary]) -> int:
        """The count of the concatenation of ``parts``; :class:`SeamError` where it cannot."""
        ...

    def fold_many(self, samples: Sequence[Sequence[Sequence[Summary]]]) -> list[int | None]:
        """Each sample's count: the sum of its sequences' folds (None where a seam cannot be
        folded). Does in one go what it can for all of them (one tokenizer call)."""
        ...


@runtime_checkable
class SharedCache(Protocol):
    """A counter whose word counts a forked worker can hand back to the parent's cache."""

    def count_texts(
        self, texts: Sequence[str], journal: list[WordCount] | None = None
    ) -> tuple[list[int], list[Summary]]:
        """As :meth:`FoldingCounter.count_texts`; every word counted is added to ``journal``."""
        ...

    def learn(self, counted: Sequence[WordCount]) -> None:
        """Take word counts made elsewhere (by a worker process with the same tokenizer)."""
        ...


class FoldingBase(ABC):
    """What the two folding counters share: the special-token check, the recurring texts'
    summaries, and the table of the texts their summaries hold (so that arrays can hold them
    as small integers)."""

    def __init__(self, tokenizer: Tokenizer, empty: Summary) -> None:
        self.tokenizer = tokenizer
        self.texts = TextTable()
        self._glue: dict[str, Summary] = {"": empty}
        specials = [t.content for t in tokenizer.backend.get_added_tokens_decoder().values()]
        if getattr(tokenizer.backend, "encode_special_tokens", False):
            specials = []  # special-token strings in the text are read as plain text
        self._specials = literal_pattern(specials)

    @abstractmethod
    def summarize(self, text: str) -> Summary:
        """The summary of one text."""

    def unsafe(self, text: str) -> bool:
        """Text holding a special-token string may be split there: count it whole instead."""
        return bool(self._specials and self._specials.search(text))

    def summarize_many(self, texts: Sequence[str]) -> list[Summary]:
        """:meth:`summarize` of each text; a counter whose summaries call the tokenizer
        overrides it to count what they need in one call for all of them."""
        return [self.summarize(t) for t in texts]

    def glue(self, text: str) -> Summary:
        """The summary of a text that recurs (a label, a separator, a template's text), kept."""
        s = self._glue.get(text)
        if s is None:
            if len(self._glue) > MAX_GLUE:
                self._glue = {"": self._glue[""]}
            s = self._glue[text] = self.summarize(text)
        return s

    def glue_each(self, parts: Sequence[str | int], summaries: Sequence[Summary]) -> list[Summary]:
        """``parts`` with each text replaced by its :meth:`glue` summary and each number n by
        ``summaries[n]`` (a record's text, in a sample's parts). The kept summaries are looked
        up directly: a sample has dozens of such texts, nearly all kept already."""
        get, glue = self._glue.get, self.glue
        # a summary is a non-empty tuple: "or" calls glue() only for a text not kept yet
        return [
            # type(p) is int (faster than isinstance) does not narrow p to str in the else
            summaries[p] if type(p) is int else (get(p) or glue(p))  # type: ignore[arg-type]
            for p in parts
        ]

    def glue_many(self, texts: Sequence[str]) -> None:
        """Keep the summaries of these texts, as :meth:`glue` would: those not kept yet (a new
        meta-instruction, mostly) are summarised together (see :meth:`summarize_many`)."""
        new = [t for t in dict.fromkeys(texts) if t not in self._glue]
        if not new:
            return
        if len(self._glue) + len(new) > MAX_GLUE:
            self._glue = {"": self._glue[""]}
        self._glue.update(zip(new, self.summarize_many(new)))
