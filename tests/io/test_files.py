"""Writing JSON lines: one byte format whichever encoder writes it."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mosaic_it.io.files import _COMPACT, dumps, dumps_bytes

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
