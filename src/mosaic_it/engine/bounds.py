"""Token bookkeeping: the counts grouping decides on before any sample is counted exactly.

Every record's prompt and response are counted once (alone); the small texts a layout adds
(separators, labels, tags, meta-instructions) are counted once and cached; the template's own
text is counted once. Summed, they bound a candidate sample's count from below and above:
joining texts can change their token count by a token or so per seam, so each seam widens the
bounds by :data:`SEAM_MARGIN`.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from mosaic_it.budget.folding import MAX_GLUE
from mosaic_it.budget.templates import Template
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.method.layout import Layout
from mosaic_it.method.pack import RulePack
from mosaic_it.records import Numbering

SEAM_MARGIN = 2  # tokens a seam between two separately counted texts may add or remove
LABELS_KEPT = 64  # numbers up to which a label style's counts are kept in a list


@dataclass
class Counts:
    """Token counts of the records (each text tokenized alone), computed once."""

    prompt: array = field(default_factory=lambda: array("i"))
    output: array = field(default_factory=lambda: array("i"))


def rule_texts(pack: RulePack) -> list[str]:
    """Every phrasing of the permute and maskout rules (either form: a list, or one/many)."""
    return [
        text
        for strategy in (pack.permute, pack.maskout)
        for rule in strategy["rules"].values()
        for text in (rule if isinstance(rule, list) else rule["one"] + rule["many"])
    ]


def pack_texts(pack: RulePack) -> list[str]:
    """Every text the rule pack can write (phrasings, tie breaks, tags), to count ahead."""
    f = pack.layout
    texts: list[str] = []
    for key in ("tag_phrasings", "generic_phrasings"):
        texts += f[key]
    texts += rule_texts(pack)
    texts += pack.permute["tie_break"] + pack.data["input_counts"]
    for open_, close in f["tag_brackets"]:
        for pair in f["tag_words"]:
            for word in pair:
                texts += [open_ + word + close, open_ + word.lower() + close]
    return texts


class TokenBounds:
    """Cached counts of the small texts of layouts and templates, and the bounds they give."""

    def __init__(
        self, counts: Counts, *, pack: RulePack, tokenizer: Tokenizer, template: Template
    ) -> None:
        self.counts = counts
        self.tokenizer = tokenizer
        self.template = template
        # the pack's texts (thousands of tags among them), counted in one call: one by one,
        # each epoch's worker would count the tags its layouts meet again
        texts = sorted(set(pack_texts(pack)) - {""})
        self._cache: dict[str, int] = dict(zip(texts, tokenizer.count_batch(texts)))
        # the template's own tokens: its text and the special tokens it adds
        self.base = self.count(template.prefix + template.middle + template.suffix) + (
            template.special_count(tokenizer)
        )
        # the most a permute or maskout rule's meta-instruction adds to the layout's own
        self.rule_meta_max = (
            max(self.count(text) for text in rule_texts(pack))
            + max(self.count(t) for t in pack.permute["tie_break"])
            + max(self.count(t) for t in pack.data["input_counts"])
            + 2 * SEAM_MARGIN
        )
        self._label_costs: dict[Numbering | None, list[int]] = {None: [0] * (LABELS_KEPT + 1)}

    def count(self, text: str) -> int:
        """Tokens of a small text alone (cached)."""
        n = self._cache.get(text)
        if n is None:
            if len(self._cache) > MAX_GLUE:
                self._cache.clear()  # bounded: metas with their tags are many over a long run
            n = self._cache[text] = self.tokenizer.count(text) if text else 0
        return n

    def meta_count(self, layout: Layout) -> int:
        """An upper bound on the tokens of a layout's meta-instruction, from cached counts:
        the phrasing without its tags, plus the tags, plus a seam margin on each side of each."""
        if not layout.tags:
            return self.count(layout.meta)
        bare = layout.meta.replace(layout.tags.begin, "").replace(layout.tags.end, "")
        tags = self.count(layout.tags.begin) + self.count(layout.tags.end)
        return self.count(bare) + tags + 4 * SEAM_MARGIN

    def system_tokens(self, system: str) -> int:
        """Tokens a system prompt adds to (or, replacing a default one, takes from) the base."""
        if not system:
            return 0
        t = self.template
        if t.joined:
            return self.count(t.prefix_for(system)) - self.count(t.prefix)
        return self.count(system)

    def single(self, index: int, system: str) -> tuple[int, int]:
        """Lower and upper bounds of one record alone in the plain layout."""
        est = self.base + self.counts.prompt[index] + self.counts.output[index]
        extra = self.system_tokens(system)
        return est + extra - 4 * SEAM_MARGIN, est + extra + 4 * SEAM_MARGIN

    def layout_costs(self, layout: Layout, system: str) -> tuple[int, int, int]:
        """What a layout adds to a sample: once (template, system prompt, meta-instruction),
        per record (separators, tags), and the slack :meth:`meta_count` may overstate."""
        c = self.count
        fixed = self.base + self.system_tokens(system)
        fixed += self.meta_count(layout) + 2 * c(layout.meta_separator) + SEAM_MARGIN * 6
        per_item = c(layout.instruction_separator) + c(layout.response_separator) + SEAM_MARGIN * 4
        if layout.tags:
            per_item += c(layout.tags.begin) + c(layout.tags.end)
        return fixed, per_item, 8 * SEAM_MARGIN if layout.tags else 0

    def item_cost(self, layout: Layout, per_item: int, number: int, index: int) -> int:
        """What record ``index`` adds as item ``number`` of a sample, answer aside."""
        labels = 2 * self.count(layout.numbering.render(number)) if layout.numbering else 0
        return per_item + labels + self.counts.prompt[index]

    def label_costs(self, numbering: Numbering | None, upto: int) -> list[int]:
        """What the labels of a style add to an item (its instruction's and its answer's), by
        number: the list holds numbers 1 to at least ``upto`` (at most :data:`LABELS_KEPT`;
        :meth:`item_cost` tells past it). Kept per style: grouping reads it for every record."""
        costs = self._label_costs.get(numbering)
        if costs is None:
            costs = self._label_costs[numbering] = [0]
        upto = min(upto, LABELS_KEPT)
        if numbering is not None and len(costs) <= upto:
            render, count = numbering.render, self.count
            costs += [2 * count(render(n)) for n in range(len(costs), upto + 1)]
        return costs
