"""Exact token counts of samples: every record's texts counted once, each sample folded.

A sample's count is the count of its *rendered training sequence* (template, BOS/EOS, labels,
tags and meta-instructions included). Exact counts come from one of three places:

* word-local tokenizers (Llama-family SentencePiece BPE, the bundled one included): folded from
  the records' word summaries by :mod:`mosaic_it.budget.counting`, without tokenizing the sample;
* byte-level BPE behind GPT-2's (SmolLM2, with digits apart), Qwen2's or Llama-3's split
  expression: folded from the records' piece summaries by :mod:`mosaic_it.budget.pretokens`,
  likewise;
* any other tokenizer (or a seam neither can fold): the sample is tokenized whole.

Both folding counters implement :class:`mosaic_it.budget.folding.FoldingCounter`; this module
is the one place that picks and drives them, and the one that knows the layout of a composed
sample (:func:`mosaic_it.method.compose.sample_parts`): the budget counts texts, the engine
counts samples. The records' texts are counted in batches (on forked workers when
there are several: :meth:`SampleCounter.count_texts` changes nothing but caches, and
:meth:`SampleCounter.take_counts` takes its result back in the parent).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from mosaic_it.budget.counting import WordCounter
from mosaic_it.budget.folding import (
    FoldingCounter,
    SeamError,
    SharedCache,
    Summary,
    TextTable,
    WordCount,
)
from mosaic_it.budget.hard_pairs import pretoken_scheme
from mosaic_it.budget.pretokens import PieceCounter
from mosaic_it.budget.templates import Template
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.budget.word_local import supports
from mosaic_it.method.compose import sample_parts
from mosaic_it.records import Sample

MAX_FRAMES = 1000  # templates' texts kept summarised, by system prompt


def folding_counter(tokenizer: Tokenizer) -> tuple[FoldingCounter | None, str]:
    """The counter that folds this tokenizer's counts (None if none can), and how, in words."""
    if supports(tokenizer):
        return WordCounter(tokenizer), "folded from word counts (word-local SentencePiece BPE)"
    scheme = pretoken_scheme(tokenizer)
    if scheme is not None:
        return PieceCounter(tokenizer), f"folded from piece counts ({scheme.describe()})"
    return None, ""


class RecordSummaries:
    """Summaries of many texts (tuples of counts and texts, as the counter makes them): tuples
    while the run's records are held in memory, compact arrays (texts stored as ids of the
    counter's table) once they are spooled to disk."""

    def __init__(self, shape: str) -> None:
        self.shape = shape  # one letter a field: i (a count), s (a text), b (a flag)
        self.tuples: list[tuple] | None = []
        self.columns = [array("b" if kind == "b" else "i") for kind in shape]

    def add_many(self, counter: FoldingCounter, summaries: Sequence[Summary]) -> None:
        table = counter.texts
        if self.tuples is not None:
            # one string object for each text, however many summaries hold it (a worker's
            # summaries come with strings of their own)
            text, number = table.text, table.number
            texts = [j for j, kind in enumerate(self.shape) if kind == "s"]
            for summary in summaries:
                kept = list(summary)
                for j in texts:
                    kept[j] = text(number(kept[j]))
                self.tuples.append(tuple(kept))
            return
        for summary in summaries:
            for kind, column, v in zip(self.shape, self.columns, summary):
                column.append(table.number(v) if kind == "s" else int(v))

    def compact(self, counter: FoldingCounter) -> None:
        """Keep the summaries in arrays from now on (a few bytes a text)."""
        tuples, self.tuples = self.tuples, None
        self.add_many(counter, tuples or ())

    def getter(self, table: TextTable) -> Callable[[int], tuple]:
        """A function from a record's number to its summary (one built for each shape: this
        runs for every record of every sample once the summaries are compact); ``table``: the
        texts they hold."""
        if self.tuples is not None:
            return self.tuples.__getitem__
        c, word = self.columns, table.text
        if self.shape == "issb":
            total, head, tail, single = c
            return lambda i: (total[i], word(head[i]), word(tail[i]), single[i] == 1)
        if self.shape == "isisii":
            total, head, head_count, tail, tail_count, kind = c
            return lambda i: (
                total[i],
                word(head[i]),
                head_count[i],
                word(tail[i]),
                tail_count[i],
                kind[i],
            )
        shape = self.shape
        return lambda i: tuple(
            word(column[i]) if k == "s" else bool(column[i]) if k == "b" else column[i]
            for k, column in zip(shape, c)
        )


@dataclass
class Counted:
    """What counting a batch of texts found: their counts, their summaries (None when samples
    are counted whole) and the words it counted on the way (for the parent's cache)."""

    numbers: list[int]
    summaries: list[Summary] | None
    learned: list[WordCount]
    unsafe: bool = False  # the texts hold special-token strings: folding stops


class SampleCounter:
    """Exact token counts of composed samples, for one tokenizer, template and run.

    ``ahead``: texts every sample may hold (a rule pack's phrasings and tags), counted first.
    """

    def __init__(self, tokenizer: Tokenizer, template: Template, ahead: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.template = template
        self.folder, self._folding = folding_counter(tokenizer)
        self._unfolded = (  # why samples are tokenized whole, once folding is off
            ""
            if self.folder
            else "its normaliser, pre-tokenizer or model is not one the folding proofs cover"
        )
        self._summaries = (
            (RecordSummaries(self.folder.shape), RecordSummaries(self.folder.shape))
            if self.folder
            else None
        )
        self._special = template.special_count(tokenizer)  # BOS/EOS the template adds
        self._safe_systems: dict[str, bool] = {}
        self._frames: dict[str, tuple[Summary, Summary, Summary]] = {}  # template text, by system
        if self.folder is not None:
            self.folder.prime_pack(ahead)

    @property
    def folds(self) -> bool:
        """Whether samples' counts are folded (False: every sample is tokenized whole)."""
        return self.folder is not None

    @property
    def counting(self) -> str:
        """How exact sample counts are made, in words (a run reports it once)."""
        if self.folder is not None:
            return self._folding
        return f"each sample tokenized whole ({self._unfolded})"

    def stop_folding(self, why: str) -> None:
        """Tokenize every sample whole from now on (``why``, in words, for :attr:`counting`)."""
        self.folder = None
        self._summaries = None
        self._unfolded = why

    def compact(self) -> None:
        """Keep the records' summaries in compact arrays from now on (the records were spooled
        to disk: the run's memory then no longer grows with its text)."""
        if self._summaries is not None and self.folder is not None:
            for summaries in self._summaries:
                summaries.compact(self.folder)

    # ------------------------------------------------------------------ the records' texts

    def count_texts(self, texts: list[str], fold: bool = True) -> Counted:
        """Count texts; with a folding counter from their words or pieces (of which only those
        never seen before are tokenized), otherwise (or with ``fold`` False) by tokenizing every
        text. Texts holding special-token strings are all tokenized, and folding stops for the
        rest of the run once :meth:`take_counts` takes them. Changes nothing but caches, so it
        may run on a forked worker: :meth:`take_counts` takes the result."""
        counter = self.folder if fold else None
        if counter is not None and any(map(counter.unsafe, texts)):
            return Counted(self.tokenizer.count_batch(texts), None, [], unsafe=True)
        if counter is None:
            return Counted(self.tokenizer.count_batch(texts), None, [])
        learned: list[WordCount] = []
        if isinstance(counter, SharedCache):
            numbers, summaries = counter.count_texts(texts, learned)
        else:
            numbers, summaries = counter.count_texts(texts)
        return Counted(numbers, summaries, learned)

    def take_counts(self, counted: Counted) -> tuple[list[int], list[int]]:
        """Keep what :meth:`count_texts` found (in record order); the records' counts."""
        if counted.unsafe and self.folder is not None:
            self.stop_folding("the data holds special-token strings")
        counter, numbers = self.folder, counted.numbers
        if counter is not None and counted.summaries is not None:
            if counted.learned and isinstance(counter, SharedCache):
                counter.learn(counted.learned)  # a worker's new words: no need to count them
            # each text's summary is kept (compact arrays, once spooled): never re-derived
            assert self._summaries is not None
            prompts, outputs = self._summaries
            summaries = counted.summaries
            prompts.add_many(counter, summaries[0::2])
            outputs.add_many(counter, summaries[1::2])
        return numbers[0::2], numbers[1::2]

    # ------------------------------------------------------------------ samples

    def exact(self, sample: Sample, group: Sequence[int]) -> int:
        """The exact token count of a composed sample of the records numbered ``group``."""
        if self.foldable(sample):
            assert self.folder is not None
            try:
                return self._special + sum(map(self.folder.fold, self._parts(sample, group)))
            except SeamError:
                pass  # a seam the counter cannot fold: tokenize this sample whole
        return self.template.count(self.tokenizer, sample.instruction, sample.output, sample.system)

    def exact_many(self, samples: Sequence[tuple[Sample, Sequence[int]]]) -> list[int]:
        """Exact counts of many (sample, group) pairs: folds whose missing seam words are
        counted in one batched call, and one batched tokenization of the samples left whole."""
        counts: list[int | None] = [None] * len(samples)
        folded = [j for j, (sample, _) in enumerate(samples) if self.foldable(sample)]
        if folded:
            assert self.folder is not None
            # the texts a sample adds that recur (labels, separators, tags) are known after a
            # few samples; its meta-instruction is often new: summarised together first
            self.folder.glue_many([t for j in folded for t in samples[j][0].spec.meta_parts()])
            parts = [self._parts(*samples[j]) for j in folded]
            for j, n in zip(folded, self.folder.fold_many(parts)):
                counts[j] = None if n is None else self._special + n
        whole = [j for j, n in enumerate(counts) if n is None]
        pairs = [(s.instruction, s.output, s.system) for s, _ in (samples[j] for j in whole)]
        for j, n in zip(whole, self.template.count_batch(self.tokenizer, pairs)):
            counts[j] = n
        return cast(list[int], counts)  # every one is set by now

    def foldable(self, sample: Sample) -> bool:
        """Whether a sample's count can be folded: the template writes its texts unchanged
        and its system prompt holds no special-token string."""
        if self.folder is None:
            return False
        t = self.template
        if not t.keeps(sample.instruction, sample.output):
            return False
        ok = self._safe_systems.get(sample.system)
        if ok is None:
            text = t.prefix_for(sample.system) + t.middle + t.suffix + sample.system
            ok = self._safe_systems[sample.system] = not self.folder.unsafe(text)
        return ok

    def _parts(self, sample: Sample, group: Sequence[int]) -> list[list[Summary]]:
        """The summaries of a sample's rendered sequence(s), in order (foldable tokenizers):
        the parts compose laid the sample out in, with each record's summary where its text
        went."""
        counter, t, parts = self.folder, self.template, sample.parts
        assert counter is not None and self._summaries is not None
        if parts is None:  # a sample made elsewhere: laid out again from its layout and spec
            spec = sample.spec
            parts = sample_parts(sample.layout, len(group), *spec.meta_parts(), spec.answer_order)
        glue, glue_each, words = counter.glue, counter.glue_each, counter.texts
        prompt_summaries, output_summaries = self._summaries
        instruction = glue_each(parts.instruction, list(map(prompt_summaries.getter(words), group)))
        response = glue_each(parts.response, list(map(output_summaries.getter(words), group)))
        # the counter's lead stands for what the tokenizer prepends to a whole text (the "▁"
        # of SentencePiece models)
        lead = counter.lead
        if t.joined:
            frame = self._frames.get(sample.system)
            if frame is None:
                frame = glue(lead + t.prefix_for(sample.system)), glue(t.middle), glue(t.suffix)
                if len(self._frames) < MAX_FRAMES:
                    self._frames[sample.system] = frame
            return [[frame[0], *instruction, frame[1], *response, frame[2]]]
        system = [[glue(lead + sample.system)]] if sample.system else []
        return [[glue(lead), *instruction], [glue(lead), *response], *system]
