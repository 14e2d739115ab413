"""mosaic-it stats: counts from the specs, plots embedded in one self-contained HTML page."""

from __future__ import annotations

import base64
import json
import re

import pytest

from mosaic_it.cli.main import main
from mosaic_it.io.outputs import MARKER

from ..conftest import make_records, needs

needs("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def mosaic_run(alpaca_file, tmp_path):
    records = [
        {"instruction": r.instruction, "input": r.input, "output": r.output}
        for r in make_records(80, seed=4, long_every=20)
    ]
    src = alpaca_file(records, "orig.json")
    out, stats = tmp_path / "m.jsonl", tmp_path / "stats.json"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--epochs",
                "2",
                "--max-tokens",
                "700",
                "--stats",
                str(stats),
                "-q",
            ]
        )
        == 0
    )
    return src, out, stats


def test_report_is_one_self_contained_page(mosaic_run, tmp_path, capsys):
    _, data, stats = mosaic_run
    report, png_dir = tmp_path / "r" / "report.html", tmp_path / "png"
    assert (
        main(
            [
                "stats",
                str(data),
                "--stats",
                str(stats),
                "--report",
                str(report),
                "--png",
                str(png_dir),
            ]
        )
        == 0
    )
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # nothing to fetch: every image is inline, no scripts, no links out
    sources = re.findall(r'src="([^"]+)"', text)
    assert len(sources) == 5 and all(s.startswith("data:image/png;base64,") for s in sources)
    for s in sources:
        assert base64.b64decode(s.split(",", 1)[1]).startswith(PNG)
    assert "<script" not in text and "http" not in text and "<link" not in text
    assert sorted(p.name for p in png_dir.iterdir()) == [  # and the tool's marker
        MARKER,
        "instructions.png",
        "rejects.png",
        "rules.png",
        "strategies.png",
        "tokens.png",
    ]
    # the counts agree with the file and the run summary
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    summary = json.loads(stats.read_text())["summary"]
    out = capsys.readouterr().out
    assert f"samples                  {len(rows)}" in out
    mean = sum(r["mosaic"]["instructions"] for r in rows) / len(rows)
    assert f"mean {mean:.2f}" in out
    assert f"too_long: {len(summary['rejected'])}" in out and len(summary["rejected"]) == 4
    assert "700 tokens" in out and "0 sample(s) over it" in out
    assert "Left out (4)" in text and "maskout." in text


def test_original_records_get_counted_token_lengths(mosaic_run, tmp_path, capsys):
    src, _, _ = mosaic_run
    png_dir = tmp_path / "png"
    assert main(["stats", str(src), "--png", str(png_dir), "--max-tokens", "512"]) == 0
    assert sorted(p.name for p in png_dir.iterdir()) == [MARKER, "tokens.png"]
    out = capsys.readouterr().out
    assert "counted: vicuna template" in out and "4 sample(s) over it" in out


def test_bad_summary_file_is_exit_2(mosaic_run, tmp_path, capsys):
    _, data, _ = mosaic_run
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["stats", str(data), "--stats", str(bad)]) == 2
    assert "mosaic-it mosaic --stats" in capsys.readouterr().err


def test_figures_draw_only_what_the_data_holds():
    from collections import Counter

    from mosaic_it.apps.stats import DataStats
    from mosaic_it.apps.stats_report import figures

    stats = DataStats("x.jsonl", samples=3, instructions=Counter({2: 2, 3: 1}), tokens=[9, 12, 30])
    drawn = figures(stats)
    assert [name for name, _, _ in drawn] == ["instructions", "tokens"]
    assert all(png.startswith(b"\x89PNG") for _, _, png in drawn)
    assert "the dashed line is the budget" in drawn[1][1]
