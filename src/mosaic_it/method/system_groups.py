"""Records grouped by system prompt: records with different system prompts never share a
sample (the method gives one sample one system prompt)."""

from __future__ import annotations

from collections.abc import Iterable

from mosaic_it.records import Record


def system_groups(records: Iterable[Record]) -> dict[str, list[int]]:
    """The positions of the records by system prompt, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(record.system, []).append(i)
    return groups
