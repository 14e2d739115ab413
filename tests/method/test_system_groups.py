"""Grouping records by system prompt."""

from __future__ import annotations

from mosaic_it.method.system_groups import system_groups
from mosaic_it.records import Record


def _record(n: int, system: str) -> Record:
    return Record(id=f"r{n}", instruction=f"Task {n}.", output=f"Answer {n}.", system=system)


def test_positions_by_system_prompt_in_order_of_first_appearance():
    records = [_record(0, "b"), _record(1, ""), _record(2, "b"), _record(3, "a"), _record(4, "")]
    groups = system_groups(records)
    assert list(groups) == ["b", "", "a"]
    assert groups == {"b": [0, 2], "": [1, 4], "a": [3]}


def test_no_records_no_groups():
    assert system_groups([]) == {}
