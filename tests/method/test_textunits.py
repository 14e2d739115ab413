"""One definition of a word, a character and a first letter, for every script."""

import pytest

from mosaic_it.method.textunits import (
    WORD_READINGS,
    char_count,
    first_letter,
    first_letter_char,
    has_segmented_script,
    word_count,
    word_range,
)

from ..independent_checker import characters, initial, words


@pytest.mark.parametrize(
    "text,count",
    [
        ("Write a poem about the sea.", 6),
        ("Don't stop: 3.14 is pi!", 5),  # a contraction and a decimal are one word each
        ("请用中文写一首诗。", 8),  # each Han ideograph is a word, punctuation none
        ("日本語のテキストです", 10),  # kanji, hiragana and katakana, one word each
        ("コンピューター", 7),  # the long-vowel sign belongs to the katakana
        ("안녕하세요 세계", 2),  # Korean writes spaces: Unicode word boundaries
        ("สวัสดีครับ", 7),  # Thai: one word per letter cluster (a letter with its marks)
        ("ភាសាខ្មែរ", 4),  # Khmer likewise
        ("مرحبا بالعالم كيف حالك", 4),  # Arabic: word boundaries
        ("Hello 👋🏽 world 🎉", 2),  # emoji are not words
        ("Write 一首诗 now", 5),  # mixed scripts
        ("", 0),
    ],
)
def test_word_count_in_every_script(text, count):
    assert word_count(text) == count


def test_characters_are_what_a_reader_sees():
    assert char_count("cafe") == 4
    assert char_count("cafe\u0301") == 4  # e + combining accent is one character
    assert char_count("👋🏽") == 1  # an emoji with its skin-tone modifier
    assert char_count("a\nb") == 3  # line breaks count
    assert char_count("中文") == 2


@pytest.mark.parametrize(
    "text,letter,written",
    [
        ("Apple", "a", "A"),
        ('"Quote" me', "q", "Q"),
        ("123 go", "g", "g"),
        ("Émile", "e", "É"),  # sorts with e
        ("🎉 Party", "p", "P"),
        ("用中文回答", None, "用"),  # no a-z order: ALPHA is not drawn
        ("مرحبا", None, "م"),
        ("ßeta", None, "ß"),
        ("1234", None, None),
    ],
)
def test_first_letter(text, letter, written):
    assert first_letter(text) == letter
    assert first_letter_char(text) == written


@pytest.mark.parametrize(
    "text",
    [
        "Write a poem about the sea.",
        "请用中文写一首诗。",
        "日本語のテキストです",
        "안녕하세요 세계",
        "สวัสดีครับ",
        "مرحبا بالعالم كيف حالك",
        "Hello world 🎉",
        "Write 一首诗 now",
    ],
)
def test_the_independent_checker_counts_the_same_on_plain_text(text):
    """Two definitions written apart agree where there is nothing to argue about."""
    assert words(text) == word_count(text)
    assert characters(text) == char_count(text)
    assert initial(text) == first_letter(text)


@pytest.mark.parametrize(
    "text,readings",
    [
        # the definition, runs of letters and digits, URLs/e-mail/paths as one, between spaces
        ("Summarize https://www.livescience.com/54891-cats-dogs.html now", (7, 10, 3, 3)),
        ("Write to first.last@mail.example.com today", (5, 8, 4, 4)),
        ("Open /usr/local/lib/x.py please", (6, 7, 3, 3)),
        ("A well-known x^2+y^2 rule", (8, 8, 8, 4)),
        ("Don't stop", (2, 3, 2, 2)),
    ],
)
def test_every_common_reading_of_a_word(text, readings):
    assert tuple(read(text) for read in WORD_READINGS) == readings


def test_thai_words_range_from_runs_to_clusters():
    """A dictionary finds at least one word per space-separated run of Thai and at most one per
    letter cluster: a rule over Thai holds for every count between."""
    text = "วันนี้อากาศดีมาก ครับ"
    assert has_segmented_script(text) and word_range(text) == (2, word_count(text))
    assert not has_segmented_script("请用中文写一首诗。")
    assert word_range("Write a poem") == (3, 3)
