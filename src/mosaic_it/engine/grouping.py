"""The grouping engine: epochs, wrap modes and the exact token budget.

Each epoch shuffles every admitted record and walks the shuffled order. A sample is offered k
records (the wrap mode) and grows one record at a time while its *rendered training sequence*
(template, BOS/EOS, labels, tags and meta-instructions included) fits the budget; the first
record that does not fit starts the next sample. Every admitted record thus appears exactly once
per epoch. A record that cannot fit even alone, with the smallest layout, is rejected once, up
front, and reported.

Fitting is decided on token counts, not on text: every record's prompt and response are
counted once (from their words, with a word-local tokenizer), the small layout strings are
counted once and cached, and a candidate whose
summed count is clearly inside (or outside) the budget is decided without counting it exactly.
Joining texts can change their token count by a token or so per seam, so "clearly" means
beyond a margin per seam. Exact counts come from one of two places:

* word-local tokenizers (Llama-family SentencePiece BPE, the bundled one included): folded from
  the records' word summaries by :mod:`.counting`, without tokenizing the sample;
* byte-level BPE behind GPT-2's (SmolLM2, with digits apart), Qwen2's or Llama-3's split
  expression: folded from the records' piece summaries by :mod:`.pretokens`, likewise;
* any other tokenizer (or a seam neither can fold): the sample is tokenized whole.

Samples decided on bounds alone are counted in batches, and if a margin ever proves too small
the samples from that point on are rebuilt with exact counts throughout.

Either way every sample's count is exact and none exceeds the budget, whatever the tokenizer.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from mosaic_it.budget.counting import MAX_GLUE, Summary, WordCounter, supports
from mosaic_it.budget.pretokens import PieceCounter, SeamError, pretoken_scheme
from mosaic_it.budget.templates import Template
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.method.compose import SamplePlan, compose, plan_sample, sample_layout
from mosaic_it.method.layout import (
    Layout,
    instruction_parts,
    layout_fits,
    plain_layout,
    response_parts,
)
from mosaic_it.method.rulepack import RulePack
from mosaic_it.method.sizing import draw_k
from mosaic_it.records import Record, Sample
from mosaic_it.rng import Rng

Counter = WordCounter | PieceCounter  # what folds exact counts (see counting, pretokens)
SEAM_MARGIN = 2  # tokens a seam between two separately counted texts may add or remove
BATCH_SAMPLES = 256  # samples re-tokenized together


@dataclass
class Reject:
    index: int
    id: object
    reason: str
    detail: str
    tokens: int | None = None

    def to_dict(self) -> dict[str, object]:
        d = {"index": self.index, "id": self.id, "reason": self.reason, "detail": self.detail}
        if self.tokens is not None:
            d["tokens"] = self.tokens
        return d


@dataclass
class Counts:
    """Token counts of the records (each text tokenized alone), computed once."""

    prompt: array = field(default_factory=lambda: array("i"))
    output: array = field(default_factory=lambda: array("i"))


class _Summaries:
    """Summaries of many texts (tuples of counts and texts, as the counter makes them): tuples
    while the run's records are held in memory, compact arrays (texts stored as ids of the
    counter's table) once they are spooled to disk."""

    def __init__(self, shape: str) -> None:
        self.shape = shape  # one letter a field: i (a count), s (a text), b (a flag)
        self.tuples: list[tuple] | None = []
        self.columns = [array("i") for _ in shape]

    def add(self, wc: Counter, summary: tuple) -> None:
        if self.tuples is not None:
            words = wc.word_list  # one string object for each text, however many hold it
            self.tuples.append(
                tuple(
                    words[wc.word_id(v)] if kind == "s" else v
                    for kind, v in zip(self.shape, summary)
                )
            )
            return
        for kind, column, v in zip(self.shape, self.columns, summary):
            column.append(wc.word_id(v) if kind == "s" else int(v))

    def compact(self, wc: Counter) -> None:
        """Keep the summaries in arrays from now on (a few bytes a text)."""
        tuples, self.tuples = self.tuples, None
        for summary in tuples or ():
            self.add(wc, summary)

    def getter(self, words: list[str]) -> Callable[[int], tuple]:
        """A function from a text's number to its summary (one built for each shape: this runs
        for every record of every sample once the summaries are compact)."""
        if self.tuples is not None:
            return self.tuples.__getitem__
        c = self.columns
        if self.shape == "issb":
            total, head, tail, single = c
            return lambda i: (total[i], words[head[i]], words[tail[i]], single[i] == 1)
        if self.shape == "isisii":
            total, head, head_count, tail, tail_count, kind = c
            return lambda i: (
                total[i],
                words[head[i]],
                head_count[i],
                words[tail[i]],
                tail_count[i],
                kind[i],
            )
        shape = self.shape
        return lambda i: tuple(
            words[column[i]] if k == "s" else bool(column[i]) if k == "b" else column[i]
            for k, column in zip(shape, c)
        )


@dataclass
class Counted:
    """What counting a batch of texts found: their counts, their word summaries (None when
    samples are counted whole) and the words it counted on the way."""

    numbers: list[int]
    summaries: list[Summary] | None
    learned: list[tuple[str, int]]


@dataclass
class _Built:
    sample: Sample
    start: int  # position in the epoch order of its first record
    number: int  # sample number within the epoch
    exact: int | None  # exact token count when already known
    pending: tuple[list[Record], list[int]] | None = None  # what counting it needs, if not


@dataclass
class GroupingStats:
    exact_checks: int = 0
    margin_misses: int = 0
    plain_fallbacks: int = 0
    rule_fallbacks: int = 0
    by_epoch: dict[int, int] = field(default_factory=dict)


class Grouper:
    """Builds the samples of one run from records whose token counts are known."""

    def __init__(
        self,
        records: Sequence[Record],
        counts: Counts,
        *,
        pack: RulePack,
        tokenizer: Tokenizer,
        template: Template,
        strategies: tuple[str, ...],
        wrap_mode: str,
        max_instructions: int,
        max_tokens: int,
        seed: int,
    ) -> None:
        self.records = records
        self.counts = counts
        self.pack = pack
        self.tokenizer = tokenizer
        self.template = template
        self.strategies = strategies
        self.wrap_mode = wrap_mode
        self.max_instructions = max_instructions
        # the reference's count must stay strictly below its budget
        self.budget = max_tokens - 1 if template.strict else max_tokens
        self.seed = seed
        self.stats = GroupingStats()
        self.late_rejects: list[int] = []
        self.systems: Sequence[int] | None = None  # system-prompt number per record, if several
        self._ends: array | None = None
        self._cache: dict[str, int] = {}
        self._plain = plain_layout(pack)
        self.words: Counter | None = None  # folds exact counts of samples, when it can
        scheme = None if supports(tokenizer) else pretoken_scheme(tokenizer)
        if supports(tokenizer):
            self.words = WordCounter(tokenizer)
            self._folding = "folded from word counts (word-local SentencePiece BPE)"
        elif scheme is not None:
            self.words = PieceCounter(tokenizer)
            self._folding = f"folded from piece counts ({scheme.describe()})"
        else:
            self._folding = ""
        self._unfolded = (  # why samples are tokenized whole, once folding is off
            ""
            if self.words
            else "its normaliser, pre-tokenizer or model is not one the folding proofs cover"
        )
        self._summaries = (
            (_Summaries(self.words.shape), _Summaries(self.words.shape)) if self.words else None
        )
        self._safe_systems: dict[str, bool] = {}
        self._frames: dict[str, tuple[Summary, Summary, Summary]] = {}  # template text, by system
        self._base = self._count(template.prefix + template.middle + template.suffix) + (
            template.special_count(tokenizer)
        )
        self._rule_meta_max = (
            max(
                self._count(text)
                for strategy in (pack.permute, pack.maskout)
                for rule in strategy["rules"].values()
                for text in (rule if isinstance(rule, list) else rule["one"] + rule["many"])
            )
            + max(self._count(t) for t in pack.permute["tie_break"])
            + max(self._count(t) for t in pack.data["input_counts"])
            + 2 * SEAM_MARGIN
        )

        if self.words is not None:
            self.words.prime_pack(self._pack_texts())

    @property
    def counting(self) -> str:
        """How exact sample counts are made, in words (a run reports it once)."""
        if self.words is not None:
            return self._folding
        return f"each sample tokenized whole ({self._unfolded})"

    def _pack_texts(self) -> list[str]:
        """Every text the rule pack can write (phrasings, tie breaks, tags), to count ahead."""
        f = self.pack.layout
        texts: list[str] = []
        for key in ("tag_phrasings", "generic_phrasings"):
            texts += f[key]
        for strategy in (self.pack.permute, self.pack.maskout):
            for rule in strategy["rules"].values():
                texts += rule if isinstance(rule, list) else rule["one"] + rule["many"]
        texts += self.pack.permute["tie_break"] + self.pack.data["input_counts"]
        for open_, close in f["tag_brackets"]:
            for pair in f["tag_words"]:
                for word in pair:
                    texts += [open_ + word + close, open_ + word.lower() + close]
        return texts

    def _meta_count(self, layout: Layout) -> int:
        """An upper bound on the tokens of a layout's meta-instruction, from cached counts:
        the phrasing without its tags, plus the tags, plus a seam margin on each side of each."""
        if not layout.tags:
            return self._count(layout.meta)
        bare = layout.meta.replace(layout.tags.begin, "").replace(layout.tags.end, "")
        tags = self._count(layout.tags.begin) + self._count(layout.tags.end)
        return self._count(bare) + tags + 4 * SEAM_MARGIN

    # ------------------------------------------------------------------ counting

    def _count(self, text: str) -> int:
        n = self._cache.get(text)
        if n is None:
            if len(self._cache) > MAX_GLUE:
                self._cache.clear()  # bounded: metas with their tags are many over a long run
            n = self._cache[text] = self.tokenizer.count(text) if text else 0
        return n

    def spool(self, records: Sequence[Record]) -> None:
        """Read records from ``records`` (spooled to disk) from now on, and keep the word
        summaries compact too: the run's memory then no longer grows with its text."""
        self.records = records
        if self._summaries is not None and self.words is not None:
            for summaries in self._summaries:
                summaries.compact(self.words)

    def count(self, records: Sequence[Record]) -> tuple[list[int], list[int]]:
        """Token counts of a batch of records' prompts and outputs, each tokenized alone
        (called once per record, in order); prepares their exact folding too."""
        return self.take_counts(self.count_texts(self.texts_to_count(records)))

    def texts_to_count(self, records: Sequence[Record]) -> list[str]:
        """The texts :meth:`count_texts` counts for a batch of records (prompt and output of
        each). Text holding special-token strings turns folding off for the rest of the run."""
        texts = [t for r in records for t in (r.prompt, r.output)]
        if self.words is not None and any(self.words.unsafe(t) for t in texts):
            self.words = None  # special-token strings in the data: count samples whole
            self._summaries = None
            self._unfolded = "the data holds special-token strings"
        return texts

    def count_texts(self, texts: list[str]) -> Counted:
        """Count texts; with a word-local tokenizer from their words, of which only those never
        seen before are tokenized, otherwise by tokenizing every text. Changes nothing but
        caches, so it may run on a forked worker: :meth:`take_counts` takes the result."""
        wc = self.words
        if wc is None:
            return Counted(self.tokenizer.count_batch(texts), None, [])
        learned: list[tuple[str, int]] = []
        wc.journal = learned
        try:
            numbers, summaries = wc.count_texts(texts)
        finally:
            wc.journal = None
        return Counted(numbers, summaries, learned)

    def take_counts(self, counted: Counted) -> tuple[list[int], list[int]]:
        """Keep what :meth:`count_texts` found (in record order); the records' counts."""
        wc, numbers = self.words, counted.numbers
        if wc is not None and counted.summaries is not None:
            wc.learn(counted.learned)  # a worker's new words: the parent need not count them
            # each text's word summary is kept in compact arrays: grouping never re-derives it
            assert self._summaries is not None
            prompts, outputs = self._summaries
            summaries = counted.summaries
            for j in range(0, len(summaries), 2):
                prompts.add(wc, summaries[j])
                outputs.add(wc, summaries[j + 1])
        return numbers[0::2], numbers[1::2]

    def _parts(self, sample: Sample, group: list[int]) -> list:
        """The summaries of a sample's rendered sequence(s), in order (foldable tokenizers)."""
        wc, t, spec, layout = self.words, self.template, sample.spec, sample.layout
        assert wc is not None and self._summaries is not None
        glue, words = wc.glue, wc.word_list
        prompt_summaries, output_summaries = self._summaries
        prompts = list(map(prompt_summaries.getter(words), group))
        outputs = list(map(output_summaries.getter(words), group))
        instruction = [
            glue(p) if type(p) is str else p
            for p in instruction_parts(layout, prompts, *spec.meta_parts())
        ]
        response = [
            glue(p) if type(p) is str else p
            for p in response_parts(layout, outputs, spec.answer_order)
        ]
        # the counter's lead stands for what the tokenizer prepends to a whole text (the "▁"
        # of SentencePiece models)
        lead = wc.lead
        if t.joined:
            frame = self._frames.get(sample.system)
            if frame is None:
                frame = glue(lead + t.prefix_for(sample.system)), glue(t.middle), glue(t.suffix)
                if len(self._frames) < 1000:
                    self._frames[sample.system] = frame
            return [[frame[0], *instruction, frame[1], *response, frame[2]]]
        system = [[glue(lead + sample.system)]] if sample.system else []
        return [[glue(lead), *instruction], [glue(lead), *response], *system]

    def _foldable(self, sample: Sample) -> bool:
        """Whether a sample's count can be folded: the template writes its texts unchanged
        and its system prompt holds no special-token string."""
        if self.words is None:
            return False
        t = self.template
        if not t.keeps(sample.instruction, sample.output):
            return False
        ok = self._safe_systems.get(sample.system)
        if ok is None:
            text = t.prefix_for(sample.system) + t.middle + t.suffix + sample.system
            ok = self._safe_systems[sample.system] = not self.words.unsafe(text)
        return ok

    def _system_tokens(self, system: str) -> int:
        """Tokens a system prompt adds to (or, replacing a default one, takes from) the base."""
        if not system:
            return 0
        t = self.template
        if t.joined:
            return self._count(t.prefix_for(system)) - self._count(t.prefix)
        return self._count(system)

    def _exact(self, sample: Sample, records: list[Record], group: list[int]) -> int:
        """The exact token count of a composed sample."""
        self.stats.exact_checks += 1
        if self._foldable(sample):
            assert self.words is not None
            special = self.template.special_count(self.tokenizer)
            try:
                return special + sum(map(self.words.fold, self._parts(sample, group)))
            except SeamError:
                pass  # a seam the counter cannot fold: tokenize this sample whole
        return self.template.count(self.tokenizer, sample.instruction, sample.output, sample.system)

    def _exact_batch(self, built: list[_Built]) -> None:
        """Exact counts of many samples: whole-sample tokenization, or folds whose missing seam
        words are counted in one batched call."""
        if not built:
            return
        self.stats.exact_checks += len(built)
        whole: list[_Built] = []
        folded: list[_Built] = []
        known: list[list[tuple[int, list]]] = []
        missing: set[str] = set()
        for b in built:
            if self._foldable(b.sample):
                assert self.words is not None
                try:
                    parts = self._parts(b.sample, b.pending[1])
                    known.append([self.words.fold_known(seq, missing) for seq in parts])
                    folded.append(b)
                    continue
                except SeamError:  # a seam the counter cannot fold: tokenize this one whole
                    pass
            whole.append(b)
        counts = self.template.count_batch(
            self.tokenizer,
            [(b.sample.instruction, b.sample.output, b.sample.system) for b in whole],
        )
        if folded:
            wc = self.words
            assert wc is not None
            special = self.template.special_count(self.tokenizer)
            if missing:
                wc.prime(list(missing))  # one tokenizer call for the seams of every sample
            counts += [special + sum(wc.settle(*fold) for fold in folds) for folds in known]
        for b, n in zip(whole + folded, counts):
            b.exact = n
            b.pending = None

    def single_bounds(self, index: int) -> tuple[int, int]:
        """Lower and upper bounds of one record alone in the plain layout."""
        est = self._base + self.counts.prompt[index] + self.counts.output[index]
        return est - 3 * SEAM_MARGIN, est + 3 * SEAM_MARGIN

    def fits_alone(self, index: int, record: Record) -> tuple[bool, int | None]:
        """Whether a record fits the budget alone with the smallest layout (exact near the edge)."""
        low, high = self.single_bounds(index)
        extra = self._system_tokens(record.system)
        low, high = low + extra - SEAM_MARGIN, high + extra + SEAM_MARGIN
        if high <= self.budget:
            return True, None
        if low > self.budget:
            return False, low
        plan = SamplePlan((), self._plain, "format")
        sample = compose(
            self.pack, plan, [record], 0, layout=self._plain, template=self.template.name
        )
        n = self._exact(sample, [record], [index])
        return n <= self.budget, n

    # ------------------------------------------------------------------ grouping

    def epoch_order(self, admitted: Sequence[int], epoch: int) -> tuple[array, array | None]:
        """The shuffled order of an epoch, and where each system-prompt partition ends.

        Records with different system prompts never share a sample: the shuffled order is
        stably sorted by system prompt, and a sample never grows past its partition's end.
        Both are arrays: 4 bytes a record, where a list of ints takes 36.
        """
        order = array("i", admitted)
        Rng(self.seed, "epoch", epoch, "shuffle").shuffle(order)
        systems = self.systems
        if systems is None:
            return order, None
        order = array("i", sorted(order, key=systems.__getitem__))
        ends = array("i", bytes(4 * len(order)))
        end = len(order)
        for p in range(len(order) - 2, -1, -1):
            if systems[order[p]] != systems[order[p + 1]]:
                end = p + 1
            ends[p] = end
        if order:
            ends[-1] = len(order)
        return order, ends

    def run_epoch(self, admitted: Sequence[int], epoch: int) -> Iterator[Sample]:
        order, self._ends = self.epoch_order(admitted, epoch)
        pos, number, exact_until = 0, 0, -1
        while pos < len(order):
            built: list[_Built] = []
            p, s = pos, number
            while len(built) < BATCH_SAMPLES and p < len(order):
                b, p = self._build(order, p, s, epoch, exact=s <= exact_until)
                if b is not None:
                    built.append(b)
                    s += 1
            self._exact_batch([b for b in built if b.exact is None])
            for b in built:
                if b.exact > self.budget:
                    # a seam moved more than the margin: rebuild from here with exact counts
                    self.stats.margin_misses += 1
                    pos, number = b.start, b.number
                    exact_until = number + BATCH_SAMPLES
                    break
                b.sample.spec.tokens = b.exact
                self.stats.by_epoch[epoch] = self.stats.by_epoch.get(epoch, 0) + 1
                yield b.sample
            else:
                pos, number = p, s

    def _build(
        self, order: Sequence[int], pos: int, number: int, epoch: int, exact: bool
    ) -> tuple[_Built | None, int]:
        """Grow one sample from ``order[pos]`` on; returns it and the next position."""
        path = (self.seed, "epoch", epoch, "sample", number)
        rng = Rng(*path, "plan")  # the size first, then layout and strategy
        k = draw_k(rng, self.wrap_mode, self.max_instructions)
        plan = plan_sample(self.pack, self.strategies, path, rng)
        end = min(len(order) if self._ends is None else self._ends[pos], pos + k)
        candidates = order[pos:end]
        records = [self.records[i] for i in candidates]
        c = self._count
        budget, prompt_counts, output_counts = self.budget, self.counts.prompt, self.counts.output
        rule_meta = self._rule_meta_max if plan.strategy != "format" else 0
        maskout = plan.strategy == "maskout"

        # bounds on the rendered count, grown one record at a time (see _fits_on_bounds); the
        # layout may change as records come (a record whose text a label style or tag would
        # make ambiguous), and the bounds are then summed again for the new layout
        layout: Layout | None = plan.layout
        fixed = per_item = slack = known = answers = 0

        def costs(layout: Layout) -> tuple[int, int, int]:
            fixed = self._base + self._system_tokens(records[0].system)
            fixed += self._meta_count(layout) + 2 * c(layout.meta_separator) + SEAM_MARGIN * 6
            per_item = (
                c(layout.instruction_separator) + c(layout.response_separator) + SEAM_MARGIN * 4
            )
            if layout.tags:
                per_item += c(layout.tags.begin) + c(layout.tags.end)
            return fixed, per_item, 8 * SEAM_MARGIN if layout.tags else 0  # _meta_count's reach

        def item_cost(layout: Layout, j: int, i: int) -> int:
            labels = 2 * c(layout.numbering.render(j)) if layout.numbering else 0
            return per_item + labels + prompt_counts[i]

        fixed, per_item, slack = costs(layout)
        known = fixed  # everything but the answers
        j = 0
        best: tuple[Sample | None, int | None] = (None, None)
        for j, i in enumerate(candidates, start=1):
            record = records[j - 1]
            if not layout_fits(layout, [record.prompt], [record.output], many=j > 1) or (
                j == 2 and not layout_fits(layout, [records[0].prompt], [], many=True)
            ):
                layout = sample_layout(self.pack, plan, records[:j])
                if layout is None:
                    j -= 1  # no layout of the pack reads unambiguously with this record
                    break
                fixed, per_item, slack = costs(layout)
                known = fixed + sum(
                    item_cost(layout, n, g) for n, g in enumerate(candidates[: j - 1], start=1)
                )
            known += item_cost(layout, j, i)
            answers += output_counts[i]
            high = known + answers + (rule_meta + 3 * j if rule_meta else 0)
            low = known - slack - 2 * SEAM_MARGIN * (4 * j + 4) + (0 if maskout else answers)
            if not exact and high <= budget:
                best = (None, None)
                continue
            if not exact and low > budget:
                j -= 1
                break
            group = candidates[:j]
            sample = self._compose(plan, records[:j], epoch)
            n = self._exact(sample, records[:j], group)
            if n > budget:
                j -= 1
                break
            best = (sample, n)

        if j == 0:
            # the first record does not fit with this sample's layout: use the smallest layout
            self.stats.plain_fallbacks += 1
            sample = self._compose(plan, records[:1], epoch, layout=self._plain)
            n = self._exact(sample, records[:1], candidates[:1]) if exact else None
            if n is not None and n > budget:
                # admitted on bounds, but too long once counted exactly: report, never loop
                self.late_rejects.append(candidates[0])
                return None, pos + 1
            return _Built(sample, pos, number, n, (records[:1], candidates[:1])), pos + 1
        sample, n = best
        if sample is None:
            sample = self._compose(plan, records[:j], epoch)
        if plan.strategy != "format" and j > 1 and sample.spec.strategy == "format":
            self.stats.rule_fallbacks += 1
        return _Built(sample, pos, number, n, (records[:j], candidates[:j])), pos + j

    def _compose(
        self, plan: SamplePlan, records: list[Record], epoch: int, layout: Layout | None = None
    ) -> Sample:
        return compose(self.pack, plan, records, epoch, layout=layout, template=self.template.name)
