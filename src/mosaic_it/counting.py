"""Exact token counts of a concatenation without tokenizing it: word-local tokenizers.

Llama-family SentencePiece BPE models (the bundled one included) run BPE over the whole text,
with no pre-tokenizer, after writing spaces as "▁" and prepending one "▁". Their pieces hold
"▁" only as a leading run and no "\\n" except the byte piece ``<0x0A>``. So no token can cross
the start of a run of spaces that follows another character, nor either side of a newline:
the text splits into *words* (``\\n``, or spaces followed by other characters) that are
tokenized independently, and the count of a text is the sum of its words' counts.

A text is then summarised by ``(total, head, tail, single)``: its count in the middle of a
longer text, its first and last words, and whether it is one word. Joining two summaries only
needs the count of the one word that may span the seam. Record texts are never tokenized whole:
a text's count is the sum of its words' counts, and only words not seen before are tokenized
(:meth:`WordCounter.count_texts`), several times faster than one tokenizer pass over the text.
Each sample's exact count is folded from the summaries of its parts, in microseconds.

:func:`supports` checks the properties above on the tokenizer itself; for any other tokenizer
the engine tokenizes each sample whole instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from .tokenizer import Tokenizer

WORD = re.compile(r"\n| *[^ \n]+| +")
Summary = tuple[int, str, str, bool]  # (count in context, first word, last word, one word)
EMPTY: Summary = (0, "", "", True)
SMALL_BATCH = 64
# caches are cleared when they reach these sizes: memory stays flat over millions of samples
# (counts never depend on what is cached, only the time does)
MAX_WORDS = 400_000
MAX_GLUE = 50_000


_SUPPORTED: dict[int, tuple[object, bool]] = {}


def supports(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer is word-local in the sense above (checked once per tokenizer)."""
    known = _SUPPORTED.get(id(tokenizer.backend))
    if known is not None and known[0] is tokenizer.backend:
        return known[1]
    result = _check(tokenizer)
    _SUPPORTED[id(tokenizer.backend)] = (tokenizer.backend, result)  # keeps the id valid
    return result


def _check(tokenizer: Tokenizer) -> bool:
    try:
        config = json.loads(tokenizer.backend.to_str())
    except Exception:  # noqa: BLE001 - any tokenizer we cannot inspect is not supported
        return False
    model, normalizer = config.get("model") or {}, config.get("normalizer") or {}
    if model.get("type") != "BPE" or config.get("pre_tokenizer") is not None:
        return False
    if model.get("dropout") not in (None, 0, 0.0):
        return False
    steps = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else None
    expected = [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
    ]
    if steps != expected:
        return False
    for piece in model.get("vocab", {}):
        if "\n" in piece or "▁" in piece.lstrip("▁"):
            return False
    return True


class WordCounter:
    """Folds exact counts from word summaries; one per tokenizer and run."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._words: dict[str, int] = {"\n": 1}
        self._glue: dict[str, Summary] = {"": EMPTY}
        self.word_list: list[str] = [""]
        self._word_ids: dict[str, int] = {"": 0}
        self._newline = tokenizer.count("\n")  # the prepended "▁" and the newline byte
        specials = [t.content for t in tokenizer.backend.get_added_tokens_decoder().values()]
        if getattr(tokenizer.backend, "encode_special_tokens", False):
            specials = []  # special-token strings in the text are read as plain text
        self._specials = re.compile("|".join(map(re.escape, specials))) if specials else None

    def unsafe(self, text: str) -> bool:
        """Text holding a special-token string may be split there: count it whole instead."""
        return bool(self._specials and self._specials.search(text))

    # --------------------------------------------------------------- words

    def prime(self, words: Sequence[str]) -> None:
        """Count many words in one batched call (a few, one by one: a parallel batch has a
        start-up cost of milliseconds)."""
        self._bound()
        missing = sorted({w for w in words if w not in self._words})
        texts = ["\n" + w for w in missing]
        if len(missing) < SMALL_BATCH:
            counts = [self.tokenizer.count(t) for t in texts]
        else:
            counts = self.tokenizer.count_batch(texts)
        for w, c in zip(missing, counts):
            self._words[w] = c - self._newline  # no reset in between: all of them stay

    def _bound(self) -> None:
        if len(self._words) > MAX_WORDS:
            self._words = {"\n": 1}

    def word_id(self, w: str) -> int:
        """A small integer standing for a word (kept in arrays instead of the string)."""
        i = self._word_ids.get(w)
        if i is None:
            i = self._word_ids[w] = len(self.word_list)
            self.word_list.append(w)
        return i

    def word(self, w: str) -> int:
        n = self._words.get(w)
        if n is None:
            self._bound()
            n = self._words[w] = self.tokenizer.count("\n" + w) - self._newline
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
        if len(stripped) < len(text):
            if stripped.endswith("\n") or not stripped:
                return head, text[len(stripped):], False
            # trailing spaces after a character form their own word
            return head, text[len(stripped):], False
        cut = max(text.rfind("\n"), -1)
        last_space = text.rfind(" ")
        if last_space > cut:
            start = last_space
            while start > 0 and text[start - 1] == " ":
                start -= 1
            if start > cut:
                return head, text[start:], False
        return head, text[cut + 1:], False

    def summarize(self, text: str, standalone: int | None = None) -> Summary:
        """Summary of a text; ``standalone`` is its count tokenized alone, when known."""
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

    def glue(self, text: str) -> Summary:
        s = self._glue.get(text)
        if s is None:
            if len(self._glue) > MAX_GLUE:
                self._glue = {"": EMPTY}
            s = self._glue[text] = self.summarize(text)
        return s

    def join(self, a: Summary, b: Summary) -> Summary:
        if not a[1]:
            return b
        if not b[1]:
            return a
        left, right = a[2][-1], b[1][0]
        if right == "\n" or left == "\n" or (right == " " and left != " "):
            return a[0] + b[0], a[1], b[2], False
        w = a[2] + b[1]
        total = a[0] + b[0] - self.word(a[2]) - self.word(b[1]) + self.word(w)
        return total, (w if a[3] else a[1]), (w if b[3] else b[2]), a[3] and b[3]

    def seam_words(self, parts: Sequence[Summary], into: set[str]) -> None:
        """Add to ``into`` the uncounted words that folding ``parts`` will need (no counting)."""
        words = self._words
        tail = ""
        single = True
        head_seen = False
        for total, p_head, p_tail, p_single in parts:
            if not p_head:
                continue
            if not head_seen:
                tail, single, head_seen = p_tail, p_single, True
                continue
            left, right = tail[-1], p_head[0]
            if right == "\n" or left == "\n" or (right == " " and left != " "):
                tail, single = p_tail, False
                continue
            w = tail + p_head
            for word in (tail, p_head, w):
                if word not in words:
                    into.add(word)
            tail = w if p_single else p_tail
            single = single and p_single

    def fold(self, parts: Sequence[Summary]) -> int:
        acc = EMPTY
        for p in parts:
            acc = self.join(acc, p)
        return acc[0]

    def count_texts(self, texts: Sequence[str]) -> tuple[list[int], list[Summary]]:
        """Each text's count tokenized alone and its summary, from its words alone.

        A text's count is the sum of its words' counts, so only the words never seen before are
        tokenized (in one batched call); the text itself never is. Word counts repeat across
        records, which is what makes this several times faster than tokenizing every text.
        """
        split = [WORD.findall(t.replace("▁", " ") if "▁" in t else t) for t in texts]
        self._bound()  # before looking for missing words: prime() then keeps every one
        known = self._words
        seen: set[str] = set()
        for words in split:
            if words:
                # the first word as it reads alone, after the prepended "▁"
                seen.add(" " if words[0] == "\n" else " " + words[0])
                seen.update(words)
        self.prime([w for w in seen if w not in known])
        get = known.__getitem__
        standalone: list[int] = []
        summaries: list[Summary] = []
        for words in split:
            if not words:
                standalone.append(0)
                summaries.append(EMPTY)
                continue
            total = sum(map(get, words))
            head = words[0]
            if head == "\n":  # alone, the prepended "▁" is a word of its own
                standalone.append(total + get(" "))
            else:
                standalone.append(total - get(head) + get(" " + head))
            summaries.append((total, head, words[-1], len(words) == 1))
        return standalone, summaries
