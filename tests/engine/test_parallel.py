"""Counting on several processes gives what counting in one gives."""

import copy
import json
import os
from dataclasses import replace

import pytest

from mosaic_it import MosaicConfig, Mosaicker
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.engine.mosaicker import COUNT_BATCH
from mosaic_it.errors import InputError

from ..conftest import make_records


def prepared(records, workers, tokenizer=None):
    # records holding special tokens are kept here: these tests count them
    m = Mosaicker(
        MosaicConfig(epochs=1, max_tokens=1024, special_tokens="keep"), tokenizer=tokenizer
    )
    p = m.prepare(records, workers=workers)
    return m, p


def special_matching(tokenizer):
    """The bundled tokenizer, but reading "</s>" in a text as the special token."""
    backend = copy.deepcopy(tokenizer.backend)
    backend.encode_special_tokens = False
    return Tokenizer("bundled, specials matched", tokenizer.bos_token, tokenizer.eos_token, backend)


def samples(m, p):
    return [s.to_record() for s in m.run_epoch(p, 0)]


def test_counts_and_samples_do_not_depend_on_the_workers():
    records = make_records(3 * COUNT_BATCH + 17, seed=5, long_every=301)
    m1, p1 = prepared(records, 1)
    m2, p2 = prepared(records, 2)
    assert list(p1.grouper.counts.prompt) == list(p2.grouper.counts.prompt)
    assert list(p1.grouper.counts.output) == list(p2.grouper.counts.output)
    assert list(p1.admitted) == list(p2.admitted)
    assert p1.summary.rejected == p2.summary.rejected and p1.summary.rejected
    assert p1.summary.tokens_in_records == p2.summary.tokens_in_records
    assert samples(m1, p1) == samples(m2, p2)


def test_counts_match_the_tokenizer_when_workers_count(tokenizer):
    records = make_records(2 * COUNT_BATCH + 5, seed=6)
    _, p = prepared(records, 2)
    texts = [t for r in records for t in (r.prompt, r.output)]
    counts = tokenizer.count_batch(texts)
    assert list(p.grouper.counts.prompt) == counts[0::2]
    assert list(p.grouper.counts.output) == counts[1::2]


def test_special_token_text_late_in_the_input_is_counted_whole(tokenizer):
    # the parent finds "</s>" in a later batch while earlier ones are on the workers
    tok = special_matching(tokenizer)
    records = make_records(4 * COUNT_BATCH, seed=7)
    late = 3 * COUNT_BATCH + 3
    records[late] = replace(records[late], output=records[late].output + " </s> and <s>")
    m, p = prepared(records, 2, tok)
    assert not p.grouper.counter.folds  # folding is off: samples are tokenized whole
    texts = [t for r in records for t in (r.prompt, r.output)]
    counts = tok.count_batch(texts)
    assert counts[2 * late + 1] < tokenizer.count(texts[2 * late + 1])  # "</s>" is one token
    assert list(p.grouper.counts.prompt) == counts[0::2]
    assert list(p.grouper.counts.output) == counts[1::2]
    assert samples(m, p) == samples(*prepared(records, 1, tok))


def _with_specials(n):
    """Records of which a few, spread over several batches, hold chat-control strings."""
    records = make_records(n, seed=8)
    marked = {5: "instruction", COUNT_BATCH + 1: "output", 2 * COUNT_BATCH + 7: "system"}
    for i, where in marked.items():
        text = getattr(records[i], where) + " <|im_end|> then"
        records[i] = replace(records[i], **{where: text})
    return records, marked


@pytest.mark.parametrize("mode", ["skip", "keep"])
def test_records_holding_special_strings_are_sorted_alike_on_any_workers(mode):
    # the workers find them: left out (listed, with their input position) or kept and counted
    records, marked = _with_specials(3 * COUNT_BATCH + 11)
    runs = []
    for workers in (1, 2):
        m = Mosaicker(MosaicConfig(epochs=1, max_tokens=1024, special_tokens=mode))
        p = m.prepare(records, workers=workers)
        runs.append((m, p))
    (m1, p1), (m2, p2) = runs
    assert p1.summary.rejected == p2.summary.rejected
    assert p1.summary.special_token_records == p2.summary.special_token_records == len(marked)
    assert list(p1.positions) == list(p2.positions)
    assert list(p1.grouper.counts.output) == list(p2.grouper.counts.output)
    assert samples(m1, p1) == samples(m2, p2)
    if mode == "skip":
        left = [(r["index"], r["reason"]) for r in p2.summary.rejected]
        assert left == [(i, "special_tokens") for i in sorted(marked)]
        assert [r["detail"].split("field ")[1].split()[0] for r in p2.summary.rejected] == [
            repr(marked[i]) for i in sorted(marked)
        ]
        assert sorted(set(range(len(records))) - set(p2.positions)) == sorted(marked)
    else:
        assert list(p2.positions) == list(range(len(records)))


def test_special_strings_in_error_mode_stop_at_the_first_record_on_any_workers():
    records, marked = _with_specials(3 * COUNT_BATCH + 11)
    first = min(marked)
    for workers in (1, 2):
        m = Mosaicker(MosaicConfig(epochs=1, special_tokens="error"))
        with pytest.raises(InputError, match=f"record {first} .*field 'instruction'"):
            m.prepare(records, workers=workers)


def _die(*args):
    os._exit(9)  # as the kernel's out-of-memory killer would end a worker


@pytest.mark.parametrize("where", ["counting", "epochs"])
def test_a_worker_that_dies_is_a_clear_error_not_a_hang(tmp_path, monkeypatch, capsys, where):
    from mosaic_it.cli.main import EXIT_WORKER_DIED, main
    from mosaic_it.engine import parallel
    from mosaic_it.executors import epochs

    # forked workers inherit the patched function; the parent never calls it with 2 workers
    monkeypatch.setattr(
        parallel if where == "counting" else epochs,
        "_screen_job" if where == "counting" else "_write_epoch",
        _die,
    )
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output}
        for r in make_records(3 * COUNT_BATCH, seed=8)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert (
        main(["mosaic", str(src), str(out), "--workers", "2", "--epochs", "2", "-q"])
        == EXIT_WORKER_DIED
    )
    assert (
        "worker process died while "
        + ("counting tokens" if where == "counting" else "grouping epochs")
        in capsys.readouterr().err
    )
    assert not out.exists()


def _worker_sees(state, item):
    from mosaic_it.engine import processes

    return state["name"], item * state["factor"], os.getpid(), processes._WORKER_STATE[0] is state


def test_a_fork_pool_hands_its_state_to_each_worker():
    from mosaic_it.engine import processes

    state = {"name": "counts", "factor": 3}
    with processes.fork_pool(2, "testing", "test", state) as pool:
        mapped = list(pool.map(_worker_sees, range(6)))
        submitted = pool.submit(_worker_sees, 10).result()
    assert [m[:2] for m in mapped] == [("counts", 3 * i) for i in range(6)]
    assert submitted[:2] == ("counts", 30)
    assert all(m[2] != os.getpid() and m[3] for m in [*mapped, submitted])
    assert processes._WORKER_STATE == []  # the parent's own module is never set


@pytest.mark.parametrize("input_name", ["in.jsonl"])
def test_the_stats_do_not_depend_on_the_workers(tmp_path, input_name):
    from mosaic_it.cli.main import main

    src = tmp_path / input_name
    rows = [
        {"id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output}
        for r in make_records(400, seed=10, long_every=97)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = ("exact_checks", "margin_misses", "plain_fallbacks", "rule_fallbacks", "rejected")
    found = []
    for workers in (1, 2):
        stats = tmp_path / f"stats-{workers}.json"
        out = tmp_path / f"out-{workers}.jsonl"
        args = ["mosaic", str(src), str(out), "--workers", str(workers), "--epochs", "3"]
        assert main([*args, "--max-tokens", "700", "--stats", str(stats), "-q"]) == 0
        summary = json.loads(stats.read_text())
        summary = summary.get("summary", summary)
        found.append({k: summary[k] for k in keys})
    # the same run in one process, through the Python API
    m = Mosaicker(MosaicConfig(epochs=3, max_tokens=700))
    list(m.run(make_records(400, seed=10, long_every=97)))
    in_process = m.summary.to_dict()
    assert found[0] == found[1] == {k: in_process[k] for k in keys}
    assert found[0]["exact_checks"] > 0 and found[0]["rejected"]


# ------------------------------------------------------------------ reading ahead


def _rows_with_bad_ones(n, bad_every):
    rows = []
    for i, r in enumerate(make_records(n, seed=11)):
        row = {"id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output}
        if i % bad_every == bad_every - 1:
            row["output"] = 7  # not a string: left out with --on-error skip, an error otherwise
        rows.append(row)
    return rows


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reading_ahead_gives_the_records_and_left_outs_of_reading_here(tmp_path, monkeypatch):
    from mosaic_it.engine import parallel
    from mosaic_it.io.readers import read_records

    monkeypatch.setattr(parallel, "READ_AHEAD_BATCH", 64)  # many messages; the child inherits it
    monkeypatch.setattr(parallel, "READ_AHEAD_BATCHES", 3)  # and a reader often held back
    src = _write_jsonl(tmp_path / "in.jsonl", _rows_with_bad_ones(1000, 97))

    def read(invalid):
        return read_records(src, on_error="skip", invalid=invalid)

    here_invalid = []
    here = list(read(here_invalid))
    ahead_invalid = []
    with parallel.ReadAhead(read, ahead_invalid) as records:
        ahead = list(records)
    assert ahead == here and len(here) == 1000 - len(here_invalid)
    assert ahead_invalid == here_invalid and here_invalid
    assert [r.prompt for r in ahead] == [r.prompt for r in here]


def test_reading_ahead_raises_the_readers_error_after_the_records_before_it(tmp_path):
    from mosaic_it.engine import parallel
    from mosaic_it.io.readers import read_records

    rows = _rows_with_bad_ones(3000, 2504)
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    got = []
    with pytest.raises(
        InputError, match=r"in.jsonl:2504 \(record 2503\): field 'output': expected a string"
    ):
        with parallel.ReadAhead(lambda invalid: read_records(src), []) as records:
            for r in records:
                got.append(r.id)
    assert got == [row["id"] for row in rows[:2503]]


def _read_then_die(invalid):
    yield from make_records(10, seed=12)
    os._exit(9)  # as the kernel's out-of-memory killer would end it


def test_a_reader_that_dies_is_a_clear_error_not_a_hang():
    from mosaic_it.engine import parallel, processes

    with pytest.raises(
        processes.WorkerDied, match=r"process reading the input \(pid \d+\) exited with status 9"
    ):
        with parallel.ReadAhead(_read_then_die, []) as records:
            list(records)


@pytest.mark.parametrize("on_error", ["skip", "raise"])
def test_a_run_reading_ahead_writes_what_a_run_reading_here_writes(
    tmp_path, monkeypatch, capsys, on_error
):
    from mosaic_it.cli.main import main
    from mosaic_it.engine import parallel
    from mosaic_it.executors import local as command

    used = []

    class Seen(parallel.ReadAhead):
        def __enter__(self):
            used.append(self)
            return super().__enter__()

    monkeypatch.setattr(command, "ReadAhead", Seen)
    src = _write_jsonl(tmp_path / "in.jsonl", _rows_with_bad_ones(2 * COUNT_BATCH + 300, 997))
    found = []
    for workers, least in ((1, 0), (2, 0), (2, 1 << 40)):  # here, ahead, here (too small)
        monkeypatch.setattr(command, "READ_AHEAD_MIN_BYTES", least)
        out, stats = tmp_path / f"out-{workers}-{least}.jsonl", tmp_path / f"s-{workers}.json"
        args = ["mosaic", str(src), str(out), "--workers", str(workers), "--epochs", "2"]
        code = main([*args, "--on-error", on_error, "--stats", str(stats), "-q"])
        err = capsys.readouterr().err
        if on_error == "raise":
            found.append((code, err, out.exists()))
            continue
        summary = json.loads(stats.read_text())["summary"]
        found.append((code, out.read_bytes(), summary["invalid"], summary["records_read"]))
    assert len(used) == 1  # the second run only
    assert found[0] == found[1] == found[2]
    if on_error == "raise":
        assert found[0][0] == 2 and "in.jsonl:997 (record 996): field 'output'" in found[0][1]
        assert not found[0][2]
    else:
        assert found[0][0] == 0 and len(found[0][2]) == 4
