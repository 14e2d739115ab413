"""Output assembly of a mosaic run (io/assemble.py): row order, the staged samples, side files."""

from __future__ import annotations

import json

import pytest

from mosaic_it.engine.mosaicker import MosaicConfig
from mosaic_it.engine.summary import RunSummary
from mosaic_it.errors import InputError
from mosaic_it.io.assemble import (
    Assembly,
    RowAssembly,
    RunOutputs,
    finish_run,
    refuse_empty_run,
)
from mosaic_it.io.writers import config_path_for, staging_path
from mosaic_it.records import Record

RECORDS = [Record(i, f"Say {i}.", f"{i}.") for i in range(3)]
SAMPLE = {"instruction": "Say 0. Say 1.", "input": "", "output": "0. 1.", "mosaic": {"k": 2}}


def test_rows_come_as_samples_then_originals_then_passed_through():
    from mosaic_it.io.formats import Conversation

    assembly = RowAssembly("alpaca", keep_originals=True, keep_multiturn=True)
    assert assembly.on_conversation is not None
    assembly.on_conversation(
        Conversation(
            "c",
            [("user", "Hi."), ("assistant", "Hello."), ("user", "Again?"), ("assistant", "Ok.")],
        )
    )
    rows = list(assembly.rows([SAMPLE], RECORDS, [0, 1]))
    assert rows[0] is SAMPLE and rows[-1]["history"] == [["Hi.", "Hello."]]
    assert [r["instruction"] for r in rows[1:3]] == ["Say 0.", "Say 1."]
    assert all(r["mosaic"] is None for r in rows[1:])
    assert assembly.written == {"samples": 1, "originals": 2, "multi_turn": 1}
    assert "history" in assembly.columns
    assert RowAssembly("alpaca").on_conversation is None  # not kept: left to the reader


def test_samples_alone_go_straight_to_a_jsonl_output(tmp_path):
    out = tmp_path / "out.jsonl"
    assembly = Assembly(RunOutputs(str(out)), "jsonl")
    assert assembly.direct and assembly.samples_path == out


def test_originals_are_added_after_the_staged_samples(tmp_path):
    out = tmp_path / "out.json"
    assembly = Assembly(RunOutputs(str(out), keep_originals=True), "json")
    assert not assembly.direct and assembly.samples_path == staging_path(out)
    assembly.samples_path.write_text(json.dumps(SAMPLE) + "\n", encoding="utf-8")
    written = assembly.write(1, RECORDS, [2, 0])
    assert written == {"samples": 1, "originals": 2, "multi_turn": 0}
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert rows[0] == SAMPLE and [r["instruction"] for r in rows[1:]] == ["Say 2.", "Say 0."]
    assert not assembly.samples_path.exists()  # the stage is removed once the output is written


def test_dataset_info_is_checked_before_the_run(tmp_path):
    info = tmp_path / "dataset_info.json"
    info.write_text("[1, 2]", encoding="utf-8")
    outputs = RunOutputs(str(tmp_path / "out.json"), dataset_info=str(info))
    with pytest.raises(InputError, match="expected a JSON object of dataset entries, got list"):
        Assembly(outputs, "json")
    with pytest.raises(ValueError, match="not save_to_disk directories"):
        Assembly(RunOutputs(str(tmp_path / "out"), dataset_info=str(info)), "datasets")


def test_finish_run_writes_side_files_and_says_what_was_written(tmp_path):
    out = tmp_path / "out.jsonl"
    stats, rejects = tmp_path / "stats.json", tmp_path / "rejects.jsonl"
    outputs = RunOutputs(str(out), rejects=str(rejects), stats=str(stats))
    summary = RunSummary(records_read=3, samples_written=1)
    summary.rejected.append({"id": 9, "reason": "too long", "detail": "record 9"})
    output = {"format": "alpaca", "type": "jsonl", "rows": {"originals": 2, "multi_turn": 0}}
    text = finish_run(outputs, MosaicConfig(), summary, output, "seed: 1\n")
    assert text.startswith(f"mosaic-it: wrote 1 samples, 2 originals to {out} (alpaca); options")
    assert json.loads(stats.read_text())["output"] == output
    assert json.loads(rejects.read_text())["id"] == 9
    config_file = config_path_for(out)
    assert config_file.read_text(encoding="utf-8") == "seed: 1\n"
    placed = []
    finish_run(outputs, MosaicConfig(), summary, output, "x", place_config=placed.append)
    assert placed and placed[0]["output"] == output
    assert config_file.read_text(encoding="utf-8") == "seed: 1\n"  # placed elsewhere


def test_an_empty_run_says_why_and_writes_no_output(tmp_path):
    out = tmp_path / "out.jsonl"
    outputs = RunOutputs(str(out))
    with pytest.raises(InputError, match="holds no records"):
        refuse_empty_run(outputs, MosaicConfig(), RunSummary(), tmp_path / "in.json")
    summary = RunSummary(records_read=1)
    summary.rejected.append({"id": 0, "reason": "too long", "detail": "record 0: 9000 tokens"})
    with pytest.raises(InputError, match="1 too long for --max-tokens 2048; first: record 0"):
        refuse_empty_run(outputs, MosaicConfig(), summary, tmp_path / "in.json")
    assert not out.exists()
