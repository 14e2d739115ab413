"""One definition of a word, a character and a first letter, for every script."""

import pytest

from mosaic_it.method.textunits import char_count, first_letter, first_letter_char, word_count

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
