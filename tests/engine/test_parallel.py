"""Counting on several processes gives what counting in one gives."""

import copy
import json
import os
from dataclasses import replace

import pytest

from mosaic_it import MosaicConfig, Mosaicker
from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.engine.mosaicker import COUNT_BATCH

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
    assert p.grouper.words is None  # folding is off: samples are tokenized whole
    texts = [t for r in records for t in (r.prompt, r.output)]
    counts = tok.count_batch(texts)
    assert counts[2 * late + 1] < tokenizer.count(texts[2 * late + 1])  # "</s>" is one token
    assert list(p.grouper.counts.prompt) == counts[0::2]
    assert list(p.grouper.counts.output) == counts[1::2]
    assert samples(m, p) == samples(*prepared(records, 1, tok))


def _die(*args):
    os._exit(9)  # as the kernel's out-of-memory killer would end a worker


@pytest.mark.parametrize("where", ["counting", "epochs"])
def test_a_worker_that_dies_is_a_clear_error_not_a_hang(tmp_path, monkeypatch, capsys, where):
    from mosaic_it.cli.main import EXIT_WORKER_DIED, main
    from mosaic_it.engine import parallel
    from mosaic_it.executors import local

    # forked workers inherit the patched function; the parent never calls it with 2 workers
    monkeypatch.setattr(
        parallel if where == "counting" else local,
        "_count_job" if where == "counting" else "_run_epoch",
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
