"""mosaic-it cost: padding regimes counted by hand, packing, and the command line."""

from __future__ import annotations

import json
import random

import pytest

from mosaic_it.apps.cost import reductions, table_rows
from mosaic_it.apps.cost_counting import CostOptions, dynamic_shapes, pack_bfd, side_cost
from mosaic_it.apps.cost_timing import Timing, price
from mosaic_it.cli.main import main

from ..conftest import make_records, needs


def test_regimes_on_hand_counted_lengths():
    opt = CostOptions(original_epochs=2, batch_size=4, micro_batch_size=2, max_length=10, seed=0)
    lengths = [3, 10, 12, 5, 1]  # 12 is cut to 10 by the trainer
    side = side_cost("o", "x", lengths, 2, opt)
    assert side.sequences == 5 and side.real_tokens == 3 + 10 + 10 + 5 + 1
    assert side.truncated == 1 and side.longest == 12
    r = side.regimes
    assert r["pad_to_max"].tokens == 5 * 10 * 2
    assert r["pad_to_max"].steps == 2 * 2  # ceil(5 / 4) per epoch
    # dynamic padding: every group padded to its own longest, in the seeded order
    cut = [3, 10, 10, 5, 1]
    expected = 0
    for e in range(2):
        order = list(range(5))
        random.Random(f"0:{e}").shuffle(order)
        for s in range(0, 5, 2):
            chunk = order[s : s + 2]
            expected += len(chunk) * max(cut[i] for i in chunk)
    assert r["dynamic_micro"].tokens == expected
    assert r["dynamic_micro"].tokens <= r["dynamic_batch"].tokens <= r["pad_to_max"].tokens
    # packing: 10 | 10 | 5+3+1 -> three rows of 10
    assert r["packing"].rows == 3 and r["packing"].tokens == 3 * 10 * 2
    assert r["packing"].steps == 2


def test_best_fit_decreasing_packing():
    rnd = random.Random(1)
    lengths = [rnd.randint(1, 100) for _ in range(500)]
    rows = pack_bfd(lengths, 128)
    assert sum(rows) == sum(lengths) and max(rows) <= 128
    assert len(rows) <= 1.1 * sum(lengths) / 128 + 2  # close to the lower bound
    assert sorted(pack_bfd([70, 60, 50, 40], 100)) == [50, 70, 100]  # 60+40, 70, 50
    assert sorted(pack_bfd([70, 60, 40, 30], 100)) == [100, 100]


def test_dynamic_shapes_cover_every_sequence_once():
    lengths = list(range(1, 24))
    shapes = dynamic_shapes(lengths, 5, seed=3, epoch=1)
    assert sum(r for r, _ in shapes) == len(lengths)
    assert shapes != dynamic_shapes(lengths, 5, seed=3, epoch=2)  # a new shuffle per epoch
    assert shapes == dynamic_shapes(lengths, 5, seed=3, epoch=1)


def test_pricing_interpolates_in_length():
    t = Timing("m", "cpu", 2, [10, 20], [1.0, 3.0], 0.5, 1, None)
    assert t.micro_seconds(2, 15) == pytest.approx(2.0)
    assert t.micro_seconds(1, 20) == pytest.approx(1.5)
    assert t.micro_seconds(2, 5) == pytest.approx(0.5)
    side = side_cost(
        "o", "x", [20, 20, 20, 20], 1, CostOptions(batch_size=4, micro_batch_size=2, max_length=20)
    )
    price(side, t)
    assert side.regimes["pad_to_max"].seconds == pytest.approx(2 * 3.0 + 1 * 0.5)


def _files(alpaca_file, tmp_path):
    records = [
        {"instruction": r.instruction, "input": r.input, "output": r.output}
        for r in make_records(60, seed=2, max_words=60)
    ]
    original = alpaca_file(records, "orig.json")
    mosaic = tmp_path / "mosaic.jsonl"
    assert (
        main(["mosaic", str(original), str(mosaic), "--epochs", "4", "--max-tokens", "512", "-q"])
        == 0
    )
    return original, mosaic


def test_cost_command_counts(alpaca_file, tmp_path, capsys):
    original, mosaic = _files(alpaca_file, tmp_path)
    out = tmp_path / "cost.json"
    code = main(
        ["cost", str(original), str(mosaic), "--no-time", "--max-length", "512", "--json", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "pad to max length" in text and "The seed claims" in text
    result = json.loads(out.read_text())
    o, m = result["original"], result["mosaic"]
    assert o["sequences"] == 60 and o["epochs"] == 3 and m["epochs"] == 1
    # the mosaic holds every record 4 times: fewer sequences, more real tokens
    assert m["sequences"] < 60 * 3 and m["real_tokens"] > o["real_tokens"] * 3
    assert result["reduction"]["pad_to_max"] == pytest.approx(
        1 - m["sequences"] / (3 * 60), abs=1e-4
    )
    assert result["reduction"]["packing"] < 0  # packing: the mosaic run costs more
    assert result["timing"] is None


def test_cost_command_times_the_tiny_model(alpaca_file, tmp_path, capsys):
    needs("torch")
    needs("transformers")
    original, mosaic = _files(alpaca_file, tmp_path)
    out = tmp_path / "cost.json"
    code = main(
        [
            "cost",
            str(original),
            str(mosaic),
            "--max-length",
            "512",
            "--micro-batch-size",
            "2",
            "--measure-repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    t = result["timing"]
    assert t["model"] == "builtin:tiny-llama" and t["device"] in ("cpu", "cuda")
    assert len(t["lengths"]) == 4 and all(s > 0 for s in t["seconds"])
    for side in ("original", "mosaic"):
        for regime in result[side]["regimes"].values():
            assert regime["seconds"] > 0
    assert "extrapolated from measured steps" in capsys.readouterr().out


def test_reductions_compare_the_tokens_of_each_regime():
    opt = CostOptions(original_epochs=3, mosaic_epochs=1, batch_size=4, micro_batch_size=2)
    original = side_cost("original", "o", [100] * 12, 3, opt)
    mosaic = side_cost("mosaic", "m", [300] * 4, 1, opt)
    verdict = reductions(original, mosaic, None)
    assert verdict["sequences"] == round(1 - 4 / 36, 4)
    assert verdict["real_tokens"] == round(1 - 1200 / 3600, 4)
    for key in ("pad_to_max", "dynamic_batch", "dynamic_micro", "packing"):
        a, b = original.regimes[key].tokens, mosaic.regimes[key].tokens
        assert verdict[key] == round(1 - b / a, 4)
    assert not any(k.startswith("time_") for k in verdict)
    rows = table_rows(original, mosaic, opt, None)
    assert rows[0] == ["", "original x 3 epochs", "mosaic x 1 epoch", "mosaic vs original"]
    assert rows[1] == ["sequences trained", "36", "4", "89% less"]
