"""What a word and a first letter are, in every script: the one definition that composing,
verifying and evaluation sets all use, so a rule cannot be stated on one count and checked on
another.

* **Words.** Scripts written without spaces between words count one word per character: each
  Han ideograph, hiragana and katakana (with their marks, such as the long-vowel sign), and each
  grapheme cluster (a letter with its combining marks) of Thai, Lao, Khmer and Myanmar. Every
  other script is cut at Unicode word boundaries (UAX #29, the ``regex`` package's ``(?w)``
  mode): a word is a run between two boundaries that holds a letter or a digit, so "don't",
  "3.14" and an Arabic or Korean word are one word each, and punctuation, symbols and emoji
  are none.
  Rules about words are drawn only where they also hold under the other common readings of a
  word (:data:`WORD_READINGS`): every run of letters and digits as a word (``3.14`` as two),
  and everything between two spaces as one (a URL, an e-mail address, a path, ``x^2+y^2`` or
  "well-known" as one word). Thai, Lao, Khmer and Myanmar have a reading more, dictionary words,
  which lies between one word per space-separated run and one per cluster: a rule over such text
  must hold for every count in that range (see :func:`word_range`), and its meta-instruction
  says how these scripts are counted.
* **Characters.** User-perceived characters (grapheme clusters), spaces and line breaks
  included.
* **First letter.** The first character of the text that is a letter (Unicode category L),
  whatever comes before it (quotes, digits, markup, emoji). Alphabetical order is stated only
  between letters that reduce to a-z once accents are removed (``É`` is ``e``); any other first
  letter (Han, Arabic, ``ß``) has no order the rules could state, so they refuse it.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import regex

# one word per cluster: scripts written without spaces between words
_EACH_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
_EACH_CLASS = "".join(f"\\p{{scx={s}}}" for s in _EACH_SCRIPTS)
# a cluster that begins with a letter (or a number) of those scripts
_EACH = regex.compile(rf"(?V1)(?=[[{_EACH_CLASS}]&&[\p{{L}}\p{{N}}]])\X")
# scripts whose readers count dictionary words, which a cluster count does not give
_SEGMENTED_SCRIPTS = ("Thai", "Lao", "Khmer", "Myanmar")
_SEGMENTED_CLASS = "".join(f"\\p{{scx={s}}}" for s in _SEGMENTED_SCRIPTS)
_SEGMENTED = regex.compile(f"[{_SEGMENTED_CLASS}]")
_SEGMENTED_RUN = regex.compile(rf"(?:[{_SEGMENTED_CLASS}]|\p{{M}})+")
_BOUNDARY = regex.compile(r"(?wV1)\b")
_RUN = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_HAS_WORD_CHAR = regex.compile(r"[\p{L}\p{N}]")
_CLUSTER = regex.compile(r"\X")
_CACHE = 1 << 16


@lru_cache(maxsize=_CACHE)
def word_count(text: str) -> int:
    """The number of words of ``text`` (see the module's description)."""
    each = 0
    if _EACH.search(text):
        text, each = _EACH.subn(" ", text)
    return each + sum(1 for part in _BOUNDARY.split(text) if _HAS_WORD_CHAR.search(part))


@lru_cache(maxsize=_CACHE)
def word_count_split(text: str) -> int:
    """Words counted the other common way: every run of letters and digits is one, so "don't",
    "3.14" and "1,000" are two words each (as a ``\\w+`` tokenizer counts them). Not the
    definition: rules about words are only drawn when they hold under both counts."""
    each = 0
    if _EACH.search(text):
        text, each = _EACH.subn(" ", text)
    return each + sum(1 for _ in _RUN.finditer(text))


@lru_cache(maxsize=_CACHE)
def word_count_spaced(text: str) -> int:
    """Words counted a third common way: every stretch between two spaces that holds a letter or
    a digit is one word, so a URL, an e-mail address, a file path, ``x^2+y^2`` and "well-known"
    count one each (as ``len(text.split())`` counts, less stretches of punctuation alone).
    Scripts without spaces still count one word per cluster."""
    each = 0
    if _EACH.search(text):
        text, each = _EACH.subn(" ", text)
    return each + sum(1 for part in text.split() if _HAS_WORD_CHAR.search(part))


# a URL, an e-mail address or a file path: what many readers count as one word
_ONE_WORD = regex.compile(
    r"(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>\"]+"  # a URL
    r"|[\w.%+-]+@[\w-]+(?:\.[\w-]+)+"  # an e-mail address
    r"|(?:[A-Za-z]:\\|~/|\.{1,2}/|/)[\w.~-]+(?:[/\\][\w.~-]+)+[/\\]?",  # a path
    regex.IGNORECASE,
)


@lru_cache(maxsize=_CACHE)
def word_count_spans(text: str) -> int:
    """Words as :func:`word_count` counts them, but every URL, e-mail address and file path
    one word (where the definition counts the pieces between its punctuation)."""
    if "/" not in text and "@" not in text and "\\" not in text and "www." not in text:
        return word_count(text)
    return word_count(_ONE_WORD.sub(" w ", text))


# the readings of "word" a rule about words must hold under, the definition first
WORD_READINGS = (word_count, word_count_split, word_count_spans, word_count_spaced)


def has_segmented_script(text: str) -> bool:
    """Whether ``text`` holds Thai, Lao, Khmer or Myanmar, whose words a dictionary tells."""
    return _SEGMENTED.search(text) is not None


@lru_cache(maxsize=_CACHE)
def word_range(text: str) -> tuple[int, int]:
    """The fewest and the most words any reading gives ``text``: the readings of
    :data:`WORD_READINGS`, and for Thai, Lao, Khmer and Myanmar every dictionary segmentation,
    which gives at least one word per space-separated run of those letters and at most one per
    cluster (the count of :func:`word_count`)."""
    counts = [read(text) for read in WORD_READINGS]
    if has_segmented_script(text):
        # each run of those scripts as one word: the fewest words a dictionary could find
        counts.append(word_count_spaced(_SEGMENTED_RUN.sub("x", text)))
    return min(counts), max(counts)


def first_letter_char(text: str) -> str | None:
    """The first letter of ``text`` as written, whatever its script; None when it has none."""
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            return ch
    return None


@lru_cache(maxsize=_CACHE)
def first_letter(text: str) -> str | None:
    """The first letter of ``text`` reduced to a-z, for alphabetical order; None when the text
    has no letter or its first letter is not a Latin letter with an a-z base."""
    ch = first_letter_char(text)
    if ch is None:
        return None
    base = unicodedata.normalize("NFKD", ch)[0].lower()
    return base if "a" <= base <= "z" else None


@lru_cache(maxsize=_CACHE)
def char_count(text: str) -> int:
    """Characters, as the length rules count them: user-perceived characters (grapheme
    clusters), so an accented letter or an emoji with its modifiers is one, spaces and line
    breaks included."""
    if text.isascii():
        return len(text)
    return sum(1 for _ in _CLUSTER.finditer(text))
