"""Dataset formats and file types: reading, writing, round trips, bad input, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mosaic_it.cli import main as cli
from mosaic_it.io.formats import FORMATS, Conversation, parse
from mosaic_it.io.readers import read_records
from mosaic_it.records import Record

from ..conftest import needs

pa = needs("pyarrow")
pq = needs("pyarrow.parquet")
datasets = needs("datasets")

PAIRS = [
    ("Give three tips for staying healthy.", "", "Eat well. Sleep. Move.", ""),
    ("Translate to French.", "Good morning", "Bonjour", ""),
    ("Name a color.", "", "Blue.", "You answer in one word."),
    ("What is 2+2?", "", "4", ""),
    (
        "Write a haiku about rain.",
        "",
        "Soft rain on the roof\nthe garden drinks quietly\nclouds walk to the sea",
        "",
    ),
    ("Sort these numbers.", "3, 1, 2", "1, 2, 3", "You answer in one word."),
]


def as_format(fmt: str, instruction: str, text_input: str, output: str, system: str) -> dict:
    """A pair written the way each format's own users write it."""
    prompt = f"{instruction}\n{text_input}" if text_input else instruction
    if fmt == "alpaca":
        row = {"instruction": instruction, "input": text_input, "output": output}
        return {**row, "system": system} if system else row
    if fmt == "sharegpt":
        turns = [{"from": "human", "value": prompt}, {"from": "gpt", "value": output}]
        return {"conversations": ([{"from": "system", "value": system}] if system else []) + turns}
    if fmt == "messages-parts":  # LLaMA-Factory's v1_sft_demo.jsonl
        messages = [("system", system)] if system else []
        messages += [("user", prompt), ("assistant", output)]
        return {
            "messages": [
                {
                    "role": role,
                    "content": [{"type": "text", "value": text}],
                    "loss_weight": 1.0 if role == "assistant" else 0.0,
                }
                for role, text in messages
            ]
        }
    head = [{"role": "system", "content": system}] if system else []
    if fmt == "messages":
        return {
            "messages": head
            + [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
        }
    if system:
        return {
            "prompt": head + [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": output}],
        }
    return {"prompt": prompt, "completion": output}


def write_input(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return datasets.load_from_disk(str(path)).to_list()


def pairs_of(path: Path) -> list[tuple[str, str, str]]:
    """(prompt, output, system) of every single pair in a file, through our own reader."""
    return [(r.prompt, r.output, r.system) for r in read_records(path)]


def main(argv: list[str]) -> int:
    """The command line, on one process (epochs on worker processes cost more than they save
    here)."""
    extra = [] if "--config" in argv else ["--workers", "1"]
    return cli.main([*argv, *extra])


EXPECTED = [(f"{i}\n{x}" if x else i, o, s) for i, x, o, s in PAIRS]


# ------------------------------------------------------------------ reading


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_to_the_same_pairs(tmp_path, fmt):
    src = write_input(tmp_path / "in.jsonl", [as_format(fmt, *p) for p in PAIRS])
    assert pairs_of(src) == EXPECTED


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet", ""])
def test_each_file_type_reads(tmp_path, suffix):
    rows = [as_format("messages", *p) for p in PAIRS]
    assert pairs_of(write_input(tmp_path / f"in{suffix}", rows)) == EXPECTED


def test_aliases_text_parts_history_and_ids():
    sharegpt = {
        "id": "x1",
        "conversations": [
            {
                "from": "user",
                "value": [{"type": "text", "text": "Count "}, {"type": "text", "text": "to 3."}],
            },
            {"from": "assistant", "value": "1 2 3"},
        ],
    }
    assert parse(sharegpt, "sharegpt", 0) == Record("x1", "Count to 3.", "1 2 3")
    alpaca = {
        "instruction": "And now?",
        "output": "Done.",
        "system": "Be brief.",
        "history": [["Start.", "Started."]],
    }
    conv = parse(alpaca, "alpaca", 4)
    assert isinstance(conv, Conversation) and conv.system == "Be brief." and conv.id == 4
    assert conv.turns == [
        ("user", "Start."),
        ("assistant", "Started."),
        ("user", "And now?"),
        ("assistant", "Done."),
    ]
    top_system = {
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
        "system": "Greet.",
    }
    assert parse(top_system, "sharegpt", 0).system == "Greet."


@pytest.mark.parametrize(
    "row,fmt,message",
    [
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]},
            "messages",
            "field 'messages[1].role': unknown role 'bot'",
        ),
        ({"conversations": []}, "sharegpt", "field 'conversations': empty"),
        (
            {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "b"}]},
            "messages",
            "field 'messages[0].content': expected a string, got int",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                    {"role": "assistant", "content": "b"},
                ]
            },
            "messages",
            "field 'messages[0].content[0].type': 'image_url' parts are not supported",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}]},
            "messages",
            "the last turn must be the assistant's",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            "messages",
            "field 'messages[1].role': expected a assistant turn",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "system", "content": "c"},
                ]
            },
            "messages",
            "a system message must come first",
        ),
        (
            {"prompt": [{"role": "user", "content": "a"}], "completion": "b"},
            "prompt-completion",
            "field 'completion': expected a list of messages",
        ),
        (
            {"conversations": [{"from": "human"}, {"from": "gpt", "value": "b"}]},
            "sharegpt",
            "field 'conversations[0].value': missing",
        ),
    ],
)
def test_bad_records_name_record_and_field(tmp_path, capsys, row, fmt, message):
    good = as_format(fmt, *PAIRS[0])
    src = write_input(tmp_path / "bad.jsonl", [good, good, row])
    assert main(["mosaic", str(src), str(tmp_path / "o.jsonl"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{src}:3 (record 2)" in err and message in err, err
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_records_are_skipped_and_counted(tmp_path):
    good = as_format("messages", *PAIRS[0])
    bad = [{"messages": []}, {"messages": [{"role": "user", "content": None}]}, {"messages": "hi"}]
    src = write_input(tmp_path / "bad.jsonl", [good, *bad, good])
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(tmp_path / "o.jsonl"),
                "-q",
                "--on-error",
                "skip",
                "--stats",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "s.json").read_text())["summary"]
    assert [r["index"] for r in summary["invalid"]] == [1, 2, 3] and summary[
        "records_mosaicked"
    ] == 2


def test_a_file_mixing_formats_is_an_error_naming_the_record(tmp_path, capsys):
    rows = [
        as_format("alpaca", *PAIRS[0]),
        as_format("messages", *PAIRS[1]),
        as_format("alpaca", *PAIRS[2]),
    ]
    src = write_input(tmp_path / "mixed.jsonl", rows)
    assert main(["mosaic", str(src), str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert (
        f"{src}:2 (record 1): a messages record in a alpaca file (format detected from record 0)"
        in err
    )
    # --input-format reads every record as one format: the messages record then lacks fields
    assert main(["mosaic", str(src), str(tmp_path / "o.jsonl"), "--input-format", "messages"]) == 2
    assert "(record 0): field 'messages': missing" in capsys.readouterr().err


def test_parquet_missing_columns_is_a_file_error(tmp_path, capsys):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([{"instruction": "a", "input": ""}]), src)
    assert main(["mosaic", str(src), str(tmp_path / "o.jsonl"), "--on-error", "skip"]) == 2
    assert f"{src}: no column 'output' for the alpaca format (columns: instruction, input)" in (
        capsys.readouterr().err
    )


def test_llamafactory_value_parts_are_read_and_written_back_in_their_form(tmp_path):
    """LLaMA-Factory's newer messages files hold contents as ``{"type": "text", "value": ...}``
    parts (its data/v1_sft_demo.jsonl): read as such, and written in the same form."""
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "value": "hi"}], "loss_weight": 0.0},
            {
                "role": "assistant",
                "content": [{"type": "text", "value": "Hello! "}, {"type": "text", "value": "Hi."}],
                "loss_weight": 1.0,
            },
        ]
    }
    assert parse(row, "messages-parts", 0) == Record(0, "hi", "Hello! Hi.")
    src = write_input(
        tmp_path / "in.jsonl", [row] + [as_format("messages-parts", *p) for p in PAIRS]
    )
    out = tmp_path / "out.jsonl"
    assert main(["mosaic", str(src), str(out), "--output-format", "messages-parts", "-q"]) == 0
    written = read_output(out)
    for r in written:
        assert [m["role"] for m in r["messages"]][-2:] == ["user", "assistant"]
        for m in r["messages"]:
            assert [set(part) for part in m["content"]] == [{"type", "value"}]
            assert m["loss_weight"] == (1.0 if m["role"] == "assistant" else 0.0)
    back = write_input(tmp_path / "back.jsonl", written)
    assert len(pairs_of(back)) == len(written)  # what it wrote, it reads
    bad = {"messages": [{"role": "user", "content": [{"type": "text", "value": None}]}]}
    with pytest.raises(ValueError, match=r"field 'messages\[0\].content\[0\].value': expected a"):
        parse(bad, "messages-parts", 0)


# ------------------------------------------------------------------ writing and round trips


@pytest.mark.parametrize("fmt_in", FORMATS)
@pytest.mark.parametrize("fmt_out", FORMATS)
def test_round_trip_between_formats_keeps_every_pair(tmp_path, fmt_in, fmt_out):
    src = write_input(tmp_path / "in.jsonl", [as_format(fmt_in, *p) for p in PAIRS])
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--output-format",
                fmt_out,
                "--keep-originals",
                "--epochs",
                "1",
                "-q",
            ]
        )
        == 0
    )
    rows = read_output(out)
    originals = [r for r in rows if r["mosaic"] is None]
    back = write_input(tmp_path / "back.jsonl", originals)
    assert pairs_of(back) == EXPECTED
    mosaics = [r for r in rows if r["mosaic"] is not None]
    assert sum(r["mosaic"]["instructions"] for r in mosaics) == len(PAIRS)


@pytest.mark.parametrize(
    "suffix,fmt_out",
    [
        (".json", "alpaca"),
        (".parquet", "sharegpt"),
        (".parquet", "alpaca"),
        ("", "prompt-completion"),
        ("", "messages"),
        (".parquet", "messages-parts"),
    ],
)
def test_round_trip_through_each_output_type(tmp_path, suffix, fmt_out):
    src = write_input(tmp_path / "in.json", [as_format("alpaca", *p) for p in PAIRS])
    out = tmp_path / f"out{suffix}"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--output-format",
                fmt_out,
                "--keep-originals",
                "--epochs",
                "2",
                "-q",
            ]
        )
        == 0
    )
    rows = read_output(out)
    mosaics = [r for r in rows if r["mosaic"] is not None]
    specs = [
        r["mosaic"] if isinstance(r["mosaic"], dict) else json.loads(r["mosaic"]) for r in mosaics
    ]
    assert sum(s["instructions"] for s in specs) == 2 * len(PAIRS)
    back = write_input(tmp_path / "back.jsonl", [r for r in rows if r["mosaic"] is None])
    assert pairs_of(back) == EXPECTED
    # and our own output reads back directly, as a file of that type
    assert len(list(read_records(out))) == len(rows)


def test_multiturn_is_left_out_or_passed_through_and_counted(tmp_path, capsys):
    multi = {
        "messages": [
            {"role": "system", "content": "S."},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2"},
        ]
    }
    src = write_input(tmp_path / "in.jsonl", [as_format("messages", *p) for p in PAIRS] + [multi])
    out = tmp_path / "o.jsonl"
    assert main(["mosaic", str(src), str(out), "--epochs", "1"]) == 0
    assert "left out (multi-turn) 1" in capsys.readouterr().err
    assert all(r["mosaic"] is not None for r in read_output(out))
    for fmt in FORMATS:
        out = tmp_path / f"{fmt}.jsonl"
        assert (
            main(
                [
                    "mosaic",
                    str(src),
                    str(out),
                    "--epochs",
                    "1",
                    "--keep-multiturn",
                    "--output-format",
                    fmt,
                ]
            )
            == 0
        )
        assert "1 multi-turn records passed through" in capsys.readouterr().err
        kept = [r for r in read_output(out) if r["mosaic"] is None]
        assert len(kept) == 1
        back = write_input(tmp_path / "back.jsonl", kept)
        conversations: list[Conversation] = []
        assert list(read_records(back, on_conversation=conversations.append)) == []
        assert conversations[0].turns == [
            ("user", "Q1"),
            ("assistant", "A1"),
            ("user", "Q2"),
            ("assistant", "A2"),
        ]
        assert conversations[0].system == "S."


def test_output_types_by_name(tmp_path, capsys):
    src = write_input(tmp_path / "in.json", [as_format("alpaca", *p) for p in PAIRS])
    assert main(["mosaic", str(src), str(tmp_path / "o.txt"), "-q"]) == 2
    assert "unknown output type" in capsys.readouterr().err
    assert main(["mosaic", str(src), str(tmp_path / "ds") + "/", "-q", "--epochs", "1"]) == 0
    assert (tmp_path / "ds" / "state.json").exists()
    assert (tmp_path / "ds.config.yaml").exists()


def test_dataset_info_entries(tmp_path, capsys):
    src = write_input(tmp_path / "in.jsonl", [as_format("alpaca", *p) for p in PAIRS])
    info = tmp_path / "data" / "dataset_info.json"
    info.parent.mkdir()
    info.write_text(json.dumps({"other": {"file_name": "x.json"}}))
    for fmt, name in (("alpaca", "a.jsonl"), ("sharegpt", "s.parquet"), ("messages", "m.json")):
        assert (
            main(
                [
                    "mosaic",
                    str(src),
                    str(tmp_path / "data" / name),
                    "--output-format",
                    fmt,
                    "--dataset-info",
                    str(info),
                    "-q",
                    "--epochs",
                    "1",
                ]
            )
            == 0
        )
    entries = json.loads(info.read_text())
    assert entries["other"] == {"file_name": "x.json"}
    assert entries["a"] == {
        "file_name": "a.jsonl",
        "formatting": "alpaca",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
        },
    }
    assert entries["s"]["columns"] == {"messages": "conversations", "system": "system"}
    assert entries["s"]["tags"] == {
        "role_tag": "from",
        "content_tag": "value",
        "user_tag": "human",
        "assistant_tag": "gpt",
        "system_tag": "system",
    }
    assert entries["m"]["formatting"] == "sharegpt" and entries["m"]["columns"] == {
        "messages": "messages"
    }
    assert entries["m"]["tags"]["role_tag"] == "role" and entries["m"]["tags"]["user_tag"] == "user"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(tmp_path / "p.jsonl"),
                "--output-format",
                "prompt-completion",
                "--dataset-info",
                str(info),
            ]
        )
        == 2
    )
    assert "LLaMA-Factory has no formatting for 'prompt-completion'" in capsys.readouterr().err


# ------------------------------------------------------------------ recipes


def test_recipe_options_and_overrides(tmp_path, capsys):
    src = write_input(tmp_path / "in.jsonl", [as_format("alpaca", *p) for p in PAIRS * 3])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "input: in.jsonl\noutput: out/mosaic.jsonl\nepochs: 3\nmax-tokens: 900\n"
        "strategies: [format, permute]\noutput_format: messages\nseed: 7\n"
    )
    assert main(["mosaic", "--config", str(recipe), "--epochs", "2", "-q"]) == 0
    out = tmp_path / "out" / "mosaic.jsonl"
    rows = read_output(out)
    assert {r["mosaic"]["epoch"] for r in rows} == {0, 1}  # the command line wins
    assert "messages" in rows[0] and {r["mosaic"]["strategy"] for r in rows} <= {
        "format",
        "permute",
    }
    effective = (tmp_path / "out" / "mosaic.jsonl.config.yaml").read_text()
    assert "epochs: 2\n" in effective and "max_tokens: 900\n" in effective
    assert "input: ../in.jsonl\n" in effective and "output: mosaic.jsonl\n" in effective
    assert src.exists()

    recipe.write_text("input: in.jsonl\noutput: o.jsonl\nepoch: 3\n")
    assert main(["mosaic", "--config", str(recipe)]) == 2
    assert "unknown key 'epoch'" in capsys.readouterr().err
    recipe.write_text("input: in.jsonl\noutput: o.jsonl\nepochs: three\n")
    assert main(["mosaic", "--config", str(recipe)]) == 2
    assert "key 'epochs': expected an integer" in capsys.readouterr().err
    recipe.write_text("input: in.jsonl\noutput: o.jsonl\ntemplate: alpaca\n")
    assert main(["mosaic", "--config", str(recipe)]) == 2
    assert "key 'template': 'alpaca' is not one of" in capsys.readouterr().err


def test_a_run_is_reproduced_from_its_output_alone(tmp_path, monkeypatch):
    src = write_input(tmp_path / "in.jsonl", [as_format("sharegpt", *p) for p in PAIRS * 4])
    out = tmp_path / "run" / "out.parquet"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--output-format",
                "prompt-completion",
                "--seed",
                "11",
                "--epochs",
                "2",
                "--keep-originals",
                "--max-instructions",
                "4",
                "-q",
            ]
        )
        == 0
    )
    first = out.read_bytes()
    config = tmp_path / "run" / "out.parquet.config.yaml"
    out.unlink()
    monkeypatch.chdir(tmp_path / "run")  # anywhere: the paths are relative to the config file
    assert main(["mosaic", "--config", "out.parquet.config.yaml"]) == 0
    assert out.read_bytes() == first
    for kind in ("o.jsonl", "dir"):  # the same holds for the other output types
        target = tmp_path / "run" / kind
        assert main(["mosaic", str(src), str(target), "-q", "--epochs", "1"]) == 0
        before = {
            p.name: p.read_bytes()
            for p in sorted(target.rglob("*") if target.is_dir() else [target])
        }
        assert main(["mosaic", "--config", f"{kind}.config.yaml"]) == 0
        after = {
            p.name: p.read_bytes()
            for p in sorted(target.rglob("*") if target.is_dir() else [target])
        }
        assert after == before
    assert config.exists()


def test_dataset_dict_splits_and_hub_names(tmp_path, monkeypatch, capsys):
    rows = [as_format("sharegpt", *p) for p in PAIRS]
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:2])}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    assert pairs_of(tmp_path / "dd") == EXPECTED  # train by default
    assert [(r.prompt, r.output) for r in read_records(tmp_path / "dd", split="test")] == [
        p[:2] for p in EXPECTED[:2]
    ]
    assert main(["mosaic", str(tmp_path / "dd"), str(tmp_path / "o.jsonl"), "--split", "dev"]) == 2
    assert "choose a split with --split: train, test" in capsys.readouterr().err

    asked = {}

    def fake_load_dataset(name, split=None):
        asked.update(name=name, split=split)
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no reachability probe: the fake is the hub
    assert pairs_of_split("someone/instructions", "validation") == EXPECTED
    assert asked == {"name": "someone/instructions", "split": "validation"}


def pairs_of_split(name: str, split: str) -> list[tuple[str, str, str]]:
    return [(r.prompt, r.output, r.system) for r in read_records(name, split=split)]
