"""GRPO on mosaic prompts: a few steps of a tiny Llama on CPU, every completion graded and
logged, and a resumed run. Skipped without the train extra."""

from __future__ import annotations

import json
import logging

import pytest

from ..conftest import needs

needs("torch")
needs("trl")

import torch

from mosaic_it.apps.model_source import TINY_LLAMA
from mosaic_it.apps.rl_prompts import make_rl_prompts
from mosaic_it.apps.train import train
from mosaic_it.apps.training.config import REWARD_LOG, TrainConfig
from mosaic_it.cli.main import main
from mosaic_it.records import Record

from ..conftest import make_records

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def rl_rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo")
    records = [
        Record(r.id, r.instruction, r.output, r.input)
        for r in make_records(40, seed=5, max_words=12)
    ]
    train_records, held_out = records[:32], records[30:]  # two records in both
    rows, _, dropped = make_rl_prompts(
        train_records, held_out, 16, max_instructions=3, max_tokens=400
    )
    assert dropped == 2
    held = {r.prompt for r in held_out}
    assert not any(text in row["prompt"][-1]["content"] for row in rows for text in held)
    path = root / "rl.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(data, out, **kw):
    base = dict(
        data=str(data),
        output_dir=str(out),
        model=TINY_LLAMA,
        method="grpo",
        batch_size=4,
        micro_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        rewards="pass+partial",
        learning_rate=1e-3,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        logging_steps=1,
        save_steps=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def _logged(out):
    return [json.loads(line) for line in (out / REWARD_LOG).read_text().splitlines()]


def test_grpo_grades_every_completion_logs_rewards_and_resumes(rl_rows, tmp_path, caplog):
    out = tmp_path / "run"
    first = train(_config(rl_rows, out, max_steps=2))
    assert first.steps == 2 and [s for s, _ in first.rewards] == [1, 2]
    # the summary keeps each reward kind apart
    assert all(set(means) == {"mosaic_pass", "mosaic_partial"} for _, means in first.rewards)
    lines = _logged(out)
    # 4 completions per step (2 prompts x 2 generations): one line each, both rewards apart
    assert len(lines) == 2 * 4
    assert [d["step"] for d in lines] == [1] * 4 + [2] * 4
    for d in lines:
        assert set(d["rewards"]) == {"mosaic_pass", "mosaic_partial"}
        assert all(0.0 <= v <= 1.0 for v in d["rewards"].values())
        assert d["id"].startswith("rl-") and isinstance(d["completion"], str)
    for step in (1, 2):
        groups: dict[str, list[int]] = {}
        for d in lines:
            if d["step"] == step:
                groups.setdefault(d["id"], []).append(d["generation"])
        assert list(groups.values()) == [[0, 1], [0, 1]]
    saved = json.loads((out / "mosaic_it_train.json").read_text())
    assert saved["config"]["method"] == "grpo" and len(saved["result"]["rewards"]) == 2

    with caplog.at_level(logging.INFO, logger="mosaic_it"):  # train's notes, as -v shows them
        second = train(_config(rl_rows, out, max_steps=3), resume=True)
    assert second.steps == 3
    assert "--max-steps changed from 2 to 3 on --resume" in caplog.text
    steps = [d["step"] for d in _logged(out)]
    assert steps.count(3) == 4 and steps.count(1) == 4  # only step 3 was made again


def test_grpo_trains_lora_adapters(rl_rows, tmp_path):
    needs("peft")
    out = tmp_path / "lora"
    result = train(
        _config(rl_rows, out, max_steps=1, lora_r=4, rewards="pass", prompt_format="vicuna")
    )
    assert result.steps == 1 and (out / "adapter_config.json").is_file()
    assert len(_logged(out)) == 4


def test_grpo_options_are_checked(rl_rows, tmp_path, capsys):
    args = [
        "train",
        str(rl_rows),
        "--method",
        "grpo",
        "--model",
        TINY_LLAMA,
        "--output-dir",
        str(tmp_path / "o"),
        "--batch-size",
        "6",
        "--micro-batch-size",
        "2",
        "--num-generations",
        "4",
    ]
    assert main(args) == 2
    assert "not a multiple of --num-generations 4" in capsys.readouterr().err
    assert main([*args[:-1], "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "mosaic": {"sources": []}}\n', encoding="utf-8")
    assert (
        main(
            [
                "train",
                str(bad),
                "--method",
                "grpo",
                "--model",
                TINY_LLAMA,
                "--output-dir",
                str(tmp_path / "o2"),
                "--batch-size",
                "4",
                "--micro-batch-size",
                "2",
                "--num-generations",
                "2",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.jsonl:1" in err and "field 'mosaic'" in err and "Traceback" not in err


def test_a_run_that_cannot_take_one_step_is_refused_before_the_model(rl_rows, tmp_path, capsys):
    """16 prompts, 64 completions a step at 2 a prompt: 32 prompts a step, so TRL's sampler
    would give no step at all (it used to exit 0 after "0 steps")."""
    argv = ["train", str(rl_rows), "--method", "grpo", "--model", TINY_LLAMA]
    argv += ["--output-dir", str(tmp_path / "out"), "--num-generations", "2"]
    assert main([*argv, "--batch-size", "64"]) == 2
    err = capsys.readouterr().err
    assert "16 prompt(s) cannot fill one optimizer step" in err, err
    assert "give at least 32 prompts" in err and "--batch-size of at most 32" in err
    assert main([*argv, "--temperature", "-1"]) == 2
    assert "--temperature: must be above 0 and at most 100" in capsys.readouterr().err
