"""The JSON codec: one byte format whichever encoder writes it, and what it reads back."""

import json
import math

import pytest

from mosaic_it.io.jsoncodec import (
    _COMPACT,
    UnreadableRecord,
    check_text,
    decode,
    dumps,
    dumps_bytes,
    dumps_indented,
    error_text,
    loads,
)

from ..hypothesis_or_skip import given, settings, st

# what output rows hold: text (any code point but lone surrogates), integers, booleans, null
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
SCALARS = TEXT | st.integers(-(2**63), 2**64 - 1) | st.booleans() | st.none()
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_orjson_and_the_json_module_write_the_same_bytes(value):
    fast = dumps_bytes(value)
    assert fast == _COMPACT.encode(value).encode("utf-8")
    assert json.loads(fast) == value
    assert b"\n" not in fast  # one line, whatever the text holds


def test_what_orjson_refuses_is_written_all_the_same():
    row = {"id": 2**70, "text": "é\u2028\x00\x7f", "n": [1, -(2**65)]}
    assert (
        dumps(row)
        == '{"id":1180591620717411303424,"text":"é\u2028\\u0000\x7f","n":[1,-36893488147419103232]}'
    )
    assert json.loads(dumps(row)) == row


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_a_value_reads_back_as_it_was_written(value):
    assert loads(dumps_bytes(value)) == value
    assert loads(dumps(value)) == value
    assert loads(dumps_indented(value)) == value


def test_what_orjson_refuses_to_read_goes_to_the_json_module():
    value, refused = decode(b'{"big": 123456789012345678901234567890, "x": NaN}')
    assert refused
    assert value["big"] == 123456789012345678901234567890
    assert math.isnan(value["x"])
    assert decode('{"a": [1, 2]}') == ({"a": [1, 2]}, False)


def test_a_lone_surrogate_is_named_with_its_field():
    value, refused = decode(b'{"messages": [{"content": "a\\ud800b"}]}')
    assert refused
    with pytest.raises(UnreadableRecord, match=r"field 'messages\[0\].content'.*character 1"):
        check_text(value)
    check_text({"fine": ["é", "\u2028"]})


def test_too_deep_a_value_is_a_one_line_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        loads("[" * 100_000 + "]" * 100_000)


def test_an_invalid_text_names_its_column():
    with pytest.raises(ValueError) as err:
        loads('{"a": 1,}')
    assert error_text(err.value).startswith("invalid JSON at column 9")
