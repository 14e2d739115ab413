"""The readers of each file type, and how an input's records are found and checked."""

from __future__ import annotations

import json

import pytest

from mosaic_it.errors import InputError
from mosaic_it.io.jsoncodec import UnreadableRecord
from mosaic_it.io.readers import (
    EXAMPLE,
    InvalidRecord,
    example_path,
    input_kind,
    iter_raw,
    read_records,
    records_from_raw,
)
from mosaic_it.io.writers import write_rows
from mosaic_it.records import Record

from ..conftest import needs

ROWS = [
    {"instruction": "Name a color.", "input": "", "output": "Blue."},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "What is 2+2?", "input": "", "output": "4"},
]


def written(tmp_path, name):
    """ROWS as a file of the type ``name`` says, written by this package's own writer."""
    needs("datasets")
    path = tmp_path / name
    write_rows(path, [{**r, "mosaic": None} for r in ROWS], "alpaca")
    return path


@pytest.mark.parametrize(
    "name,kind",
    [("in.json", "json"), ("in.jsonl", "jsonl"), ("in.parquet", "parquet"), ("in", "datasets")],
)
def test_each_file_type_is_read_by_its_reader(tmp_path, name, kind):
    path = written(tmp_path, name)
    assert input_kind(path) == kind
    raw = list(iter_raw(path))
    assert [i for i, _, _ in raw] == [0, 1, 2]
    assert [{k: obj[k] for k in ("instruction", "input", "output")} for _, _, obj in raw] == ROWS
    where = raw[1][1]
    assert where == (f"{path}:2 (record 1)" if kind == "jsonl" else f"{path}: record 1")
    records = list(read_records(path))
    assert [r.prompt for r in records] == [
        "Name a color.",
        "Translate to French.\nGood morning",
        "What is 2+2?",
    ]
    assert [r.id for r in records] == [0, 1, 2]


def test_a_name_that_is_no_local_path_is_a_hub_dataset(tmp_path):
    assert input_kind("owner/name") == "hub"
    assert input_kind(tmp_path / "owner" / "name.json") == "json"  # a missing local file
    assert input_kind(example_path()) == "jsonl"
    assert EXAMPLE == "builtin:example"
    assert len(list(read_records(example_path()))) == 120


def test_jsonl_with_a_byte_order_mark_and_blank_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps(r) for r in ROWS]
    path.write_bytes(b"\xef\xbb\xbf" + "\n\n".join(lines).encode() + b"\n  \n")
    raw = list(iter_raw(path))
    assert [(i, w) for i, w, _ in raw] == [
        (0, f"{path}:1 (record 0)"),
        (1, f"{path}:3 (record 1)"),
        (2, f"{path}:5 (record 2)"),
    ]


def test_a_bad_jsonl_line_stops_the_read_or_is_handed_on(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(ROWS[0]) + '\n{"instruction": "x",\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.jsonl:2: invalid JSON at column"):
        list(iter_raw(path))
    raw = list(iter_raw(path, lenient=True))
    assert isinstance(raw[1][2], UnreadableRecord)
    invalid: list[InvalidRecord] = []
    kept = list(read_records(path, on_error="skip", invalid=invalid))
    assert len(kept) == 1
    assert [(i.index, i.reason) for i in invalid] == [(1, "invalid")]
    assert invalid[0].to_dict()["detail"].startswith(f"{path}:2 (record 1): invalid JSON")


def test_json_list_errors_name_the_file_and_say_what_to_do(tmp_path):
    jsonl_named_json = tmp_path / "in.json"
    jsonl_named_json.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.json:2: .*Extra data \(is this JSONL"):
        list(iter_raw(jsonl_named_json))
    not_a_list = tmp_path / "one.json"
    not_a_list.write_text(json.dumps(ROWS[0]), encoding="utf-8")
    with pytest.raises(InputError, match="expected a JSON list of records, got dict"):
        list(iter_raw(not_a_list))
    surrogate = tmp_path / "odd.json"
    surrogate.write_text('[{"instruction": "a\\ud800", "output": "b"}]', encoding="utf-8")
    with pytest.raises(InputError, match=r"record 0: field 'instruction': text holds a lone"):
        list(iter_raw(surrogate))
    latin = tmp_path / "latin.json"
    latin.write_bytes('[{"instruction": "café"}]'.encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8 text"):
        list(iter_raw(latin))


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    needs("pyarrow")
    path = tmp_path / "in.parquet"
    path.write_text("not parquet", encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.parquet: not a Parquet file"):
        list(iter_raw(path))
    with pytest.raises(InputError, match="cannot read"):
        list(iter_raw(tmp_path / "missing.parquet"))


def test_a_directory_not_written_by_datasets_is_named(tmp_path):
    needs("datasets")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="not one written by datasets' save_to_disk"):
        list(iter_raw(tmp_path / "d"))


def test_the_format_is_detected_once_per_source():
    items = [
        (0, "a: record 0", {"messages": [{"role": "user", "content": "Hi?"}, _reply("Hi.")]}),
        (1, "a: record 1", {"instruction": "Name a color.", "output": "Blue."}),
    ]
    with pytest.raises(InputError, match=r"a: record 1: a alpaca record in a messages file"):
        list(records_from_raw(items))
    read = list(records_from_raw(items, input_format="alpaca", on_error="skip"))
    assert read == [Record(id=1, instruction="Name a color.", output="Blue.")]
    with pytest.raises(InputError, match="cannot tell the format"):
        list(records_from_raw([(0, "b: record 0", {"text": "x"})]))
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        list(records_from_raw(items, input_format="csv"))


def test_a_table_without_the_format_columns_is_a_source_error():
    rows = [(0, "t: record 0", {"instruction": "Name a color.", "x": None})]
    with pytest.raises(InputError, match=r"^t: no column 'output' for the alpaca format"):
        list(records_from_raw(rows, columns_checked_in="t", on_error="skip"))
    null = [(0, "t: record 0", {"instruction": "Name a color.", "output": None})]
    invalid: list[InvalidRecord] = []
    assert list(records_from_raw(null, on_error="skip", invalid=invalid)) == []
    assert invalid[0].error == "field 'output': expected a string, got null"


def test_a_conversation_is_listed_and_handed_on():
    turns = [{"role": "user", "content": "A?"}, _reply("a"), {"role": "user", "content": "B?"}]
    items = [(0, "c: record 0", {"messages": [*turns, _reply("b")]})]
    invalid: list[InvalidRecord] = []
    handed = []
    assert list(records_from_raw(items, invalid=invalid, on_conversation=handed.append)) == []
    assert len(handed[0].turns) == 4
    assert invalid[0].reason == "multi-turn"
    assert invalid[0].error == "2 turns: a multi-turn record is not mosaicked (passed through)"


def _reply(text):
    return {"role": "assistant", "content": text}
