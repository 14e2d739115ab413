"""The Ray engine on a local Ray: same semantics as the local engine, per shard."""

import json
from collections import Counter

import pytest

from ..conftest import needs

ray = needs("ray")

from mosaic_it.budget.templates import get_template
from mosaic_it.cli.main import main

from ..conftest import make_records  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def write_shards(tmp_path, records, n_files=3):
    d = tmp_path / "in"
    d.mkdir()
    for f in range(n_files):
        with open(d / f"part-{f}.jsonl", "w") as out:
            for i, r in enumerate(records):
                if i % n_files == f:
                    row = {"instruction": r.instruction, "input": r.input, "output": r.output}
                    if i % 2 == 0:
                        row["id"] = r.id
                    out.write(json.dumps(row) + "\n")
    return d


def read_out(out):
    rows = []
    for f in sorted(out.glob("shard-*.jsonl")):
        rows += [json.loads(l) for l in f.read_text().splitlines()]
    return rows


def test_ray_engine_semantics_and_determinism(local_ray, tmp_path, tokenizer):
    records = make_records(240, seed=21, long_every=80)
    src = write_shards(tmp_path, records)
    outs = []
    for run in ("a", "b"):
        out = tmp_path / f"out-{run}"
        code = main(
            [
                "mosaic",
                str(src),
                str(out),
                "--engine",
                "ray",
                "--shards",
                "3",
                "--epochs",
                "2",
                "--max-tokens",
                "1024",
                "-q",
            ]
        )
        assert code == 0
        outs.append(out)
    rows = read_out(outs[0])
    assert rows == read_out(outs[1])  # deterministic for a fixed number of shards
    assert {r["mosaic"]["shard"] for r in rows} == {0, 1, 2}
    summary = json.loads((outs[0] / "summary.json").read_text())["summary"]
    rejects = [json.loads(l) for l in (outs[0] / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == len(summary["rejected"]) == 3  # every 80th record is too long
    # every admitted record appears once per epoch; all within budget, counted exactly
    seen = Counter(i for r in rows for i in r["mosaic"]["sources"])
    assert len(seen) == 240 - 3 and set(seen.values()) == {2}
    t = get_template("vicuna")
    counts = t.count_batch(tokenizer, [(r["instruction"], r["output"]) for r in rows])
    assert all(c == r["mosaic"]["tokens"] <= 1024 for c, r in zip(counts, rows))
    assert summary["samples_written"] == len(rows)


def test_ray_engine_parquet_in_and_out(local_ray, tmp_path):
    pa = needs("pyarrow")
    import pyarrow.parquet as pq

    records = make_records(60, seed=22)
    table = pa.Table.from_pylist(
        [
            {"id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output}
            for r in records
        ]
    )
    pq.write_table(table, tmp_path / "data.parquet")
    out = tmp_path / "out"
    assert (
        main(
            [
                "mosaic",
                str(tmp_path / "data.parquet"),
                str(out),
                "--engine",
                "ray",
                "--shards",
                "2",
                "--shard-format",
                "parquet",
                "--epochs",
                "1",
                "-q",
            ]
        )
        == 0
    )
    rows = []
    for f in sorted(out.glob("shard-*.parquet")):
        rows += pq.read_table(f).to_pylist()
    sources = [i for r in rows for i in json.loads(r["mosaic"])["sources"]]
    assert sorted(sources) == sorted(r.id for r in records)


def test_ray_engine_bad_record_is_a_clear_error(local_ray, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jsonl").write_text(
        '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": 5}\n'
    )
    assert (
        main(["mosaic", str(d), str(tmp_path / "out"), "--engine", "ray", "--shards", "1", "-q"])
        == 2
    )
    err = capsys.readouterr().err
    assert "a.jsonl" in err and "'output'" in err


def _conversations(records, multiturn_every=7):
    """ShareGPT rows of the records, every 7th a two-exchange conversation; no ids on odd ones."""
    rows = []
    for i, r in enumerate(records):
        user = f"{r.instruction}\n{r.input}" if r.input else r.instruction
        turns = [{"from": "human", "value": user}, {"from": "gpt", "value": r.output}]
        if i % multiturn_every == multiturn_every - 1:
            turns += [{"from": "human", "value": "And again?"}, {"from": "gpt", "value": "Again."}]
        row = {"conversations": turns}
        if i % 2 == 0:
            row["id"] = r.id
        rows.append(row)
    return rows


def _as_messages(row):
    roles = {"human": "user", "gpt": "assistant"}
    out = {
        "messages": [
            {"role": roles[t["from"]], "content": t["value"]} for t in row["conversations"]
        ]
    }
    if "id" in row:
        out["id"] = row["id"]
    return out


@pytest.mark.parametrize(
    "input_format,formats",
    [("sharegpt", ("alpaca", "messages")), ("messages", ("sharegpt", "prompt-completion"))],
)
def test_ray_engine_reads_every_format_and_writes_the_local_shape(
    local_ray, tmp_path, input_format, formats
):
    records = make_records(70, seed=23)
    rows = _conversations(records)
    if input_format == "messages":
        rows = [_as_messages(r) for r in rows]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--epochs", "2", "--max-tokens", "1024", "--keep-originals", "--keep-multiturn", "-q"]
    for fmt in formats:
        local, shards = tmp_path / f"local-{fmt}.jsonl", tmp_path / f"ray-{fmt}"
        assert (
            main(
                [
                    "mosaic",
                    str(src),
                    str(local),
                    "--output-format",
                    fmt,
                    "--workers",
                    "1",
                    "--stats",
                    str(tmp_path / f"local-{fmt}.json"),
                    *common,
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "mosaic",
                    str(src),
                    str(shards),
                    "--engine",
                    "ray",
                    "--shards",
                    "2",
                    "--output-format",
                    fmt,
                    "--rejects",
                    str(tmp_path / f"rej-{fmt}.jsonl"),
                    "--stats",
                    str(tmp_path / f"ray-{fmt}.json"),
                    *common,
                ]
            )
            == 0
        )
        want = [json.loads(line) for line in local.read_text().splitlines()]
        got = read_out(shards)
        # the same kinds of row, with the same fields, in the same order within a shard
        kinds = lambda rs: Counter((r["mosaic"] is None, tuple(sorted(r))) for r in rs)  # noqa: E731
        got_kinds, want_kinds = kinds(got), kinds(want)
        assert set(got_kinds) == set(want_kinds)
        originals = [r for r in got if r["mosaic"] is None]
        assert len(originals) == sum(v for (o, _), v in want_kinds.items() if o)
        spec_keys = lambda rs: set().union(*(r["mosaic"] for r in rs if r["mosaic"]))  # noqa: E731
        assert spec_keys(got) - {"shard"} == spec_keys(want)
        local_stats = json.loads((tmp_path / f"local-{fmt}.json").read_text())
        ray_stats = json.loads((tmp_path / f"ray-{fmt}.json").read_text())
        assert set(ray_stats) == set(local_stats) == {"config", "summary", "output"}
        assert set(ray_stats["summary"]) == set(local_stats["summary"])
        assert ray_stats["summary"]["records_read"] == local_stats["summary"]["records_read"] == 70
        multi = [r for r in ray_stats["summary"]["invalid"] if r["reason"] == "multi-turn"]
        assert len(multi) == 10 == ray_stats["output"]["rows"]["multi_turn"]
        assert ray_stats == json.loads((shards / "summary.json").read_text())
        assert (tmp_path / f"ray-{fmt}.config.yaml").exists()
        assert len((tmp_path / f"rej-{fmt}.jsonl").read_text().splitlines()) == 10


def test_ray_engine_parquet_shards_of_messages(local_ray, tmp_path):
    pq = needs("pyarrow.parquet")
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps(_as_messages(r)) + "\n" for r in _conversations(make_records(30, seed=24))
        )
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--engine",
                "ray",
                "--shards",
                "2",
                "--epochs",
                "1",
                "--shard-format",
                "parquet",
                "--output-format",
                "messages",
                "-q",
            ]
        )
        == 0
    )
    tables = [pq.read_table(f) for f in sorted(out.glob("shard-*.parquet"))]
    assert {tuple(t.column_names) for t in tables} == {("messages", "mosaic")}


@pytest.mark.parametrize(
    "args,message",
    [
        (["in.json", "out"], "not a JSON list"),
        (["in.jsonl", "out.jsonl"], "directory of shards"),
        (["in.jsonl", "out", "--resume"], "--resume does not apply"),
        (["in.jsonl", "out", "--dataset-info", "info.json"], "--dataset-info does not apply"),
        (["in.jsonl", "out", "--workers", "2"], "--workers does not apply"),
    ],
)
def test_ray_engine_refuses_in_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.json").write_text('[{"instruction": "a", "output": "b"}]')
    (tmp_path / "in.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    assert main(["mosaic", *args, "--engine", "ray", "-q"]) == 2
    err = capsys.readouterr().err
    assert message.replace("not a JSON list", "JSON list") in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.jsonl").exists()


def test_ray_engine_quiet_prints_nothing(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({"instruction": r.instruction, "output": r.output}) + "\n"
            for r in make_records(20, seed=25)
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mosaic_it.cli.main",
            "mosaic",
            str(src),
            str(tmp_path / "out"),
            "--engine",
            "ray",
            "--shards",
            "2",
            "--epochs",
            "1",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "" and proc.stdout.strip() == ""
