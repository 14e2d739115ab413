"""Whether the text under a label answers that label's instruction: a lexical content check.

Layout checks cannot tell "right labels, wrong content" (answers in the original order under
labels in the asked order, a skipped instruction's answer under another label). Each
instruction of a sample has a topic: its reference answer and, when known, its own text. An
answer's words are compared with every topic (cosine of word counts weighted by how few topics
share a word); the answer reads like instruction j rather than its own instruction n when topic
j scores clearly higher than topic n. Short or generic answers that match no topic are given
the benefit of the doubt: the check only fails on positive evidence of another instruction.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

# similarity another topic must reach, and its lead over the answer's own topic, to say that an
# answer reads like another instruction (cosines in [0, 1])
MIN_SIMILARITY = 0.12
MIN_LEAD = 0.06

_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(  # a short list: common words say nothing about a topic
    "a an the and or but if of to in on at by for with from as is are was were be been being it "
    "its this that these those there here i you he she we they them his her our your their my "
    "me us not no do does did so than then too very can could should would will may might must "
    "have has had what which who whom how why when where all any each some such more most other "
    "into about over after before also just only one two three s t".split()
)


def words(text: str) -> list[str]:
    """Content words, lower-cased, with a plural "s" taken off."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in STOPWORDS or len(w) < 2:
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


class Topics:
    """The topics of one sample's instructions, by instruction number (1-based).

    ``topics[i]`` is the text that answers instruction i + 1 (its reference answer, with its
    instruction text if known), or None when unknown (that instruction is then never blamed).
    """

    def __init__(self, topics: Sequence[str | None]) -> None:
        counts = [Counter(words(t)) if t else None for t in topics]
        known = [c for c in counts if c]
        df = Counter(w for c in known for w in c)
        n = len(known)
        self.idf = {w: math.log(1 + n / d) for w, d in df.items()}
        self.vectors = [self._vector(c) if c else None for c in counts]

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        vec = {w: (1 + math.log(c)) * self.idf.get(w, 0.0) for w, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values()))
        return {w: v / norm for w, v in vec.items()} if norm else {}

    def __len__(self) -> int:
        return len(self.vectors)

    def scores(self, text: str) -> list[float | None]:
        """Cosine similarity of ``text`` with every topic (None where the topic is unknown)."""
        vec = self._vector(Counter(words(text)))
        return [
            None if topic is None else sum(v * topic.get(w, 0.0) for w, v in vec.items())
            for topic in self.vectors
        ]

    def reads_like(self, text: str, number: int) -> int | None:
        """The instruction ``text`` reads like instead of ``number``; None if not another one."""
        scores = self.scores(text)
        own = scores[number - 1] if 1 <= number <= len(scores) else None
        if own is None:
            return None
        best, best_score = None, MIN_SIMILARITY
        for i, score in enumerate(scores, start=1):
            if (
                i != number
                and score is not None
                and score >= best_score
                and score >= own + MIN_LEAD
            ):
                best, best_score = i, score
        return best
