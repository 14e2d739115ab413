"""The pieces of a training run that need no training: rows, lengths, options, resuming, the
reward log, the process roles."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from mosaic_it.apps.make_eval import make_eval
from mosaic_it.apps.prompt_formats import PromptFormat
from mosaic_it.apps.training.callbacks import RewardLog
from mosaic_it.apps.training.config import TrainConfig, saved_config
from mosaic_it.apps.training.data import mosaic_options, read_rl_rows, training_rows
from mosaic_it.apps.training.processes import is_main, rank, world_size
from mosaic_it.errors import InputError

from ..conftest import make_records, needs


def _config(tmp_path, **kw):
    return TrainConfig(
        data=str(tmp_path / "d.jsonl"), output_dir=str(tmp_path / "out"), model="m", **kw
    )


def test_one_process_without_a_launcher():
    assert (world_size(), rank(), is_main()) == (1, 0, True)


def test_reward_log_appends_every_completion_with_its_step_row_and_rewards(tmp_path):
    def partial(completions, **columns):
        return [len(c) / 10 for c in completions]

    def passed(completions, **columns):
        return [float(len(c) == 10) for c in completions]

    first, second = RewardLog([partial, passed], tmp_path / "rewards.jsonl").wrap()
    assert (first.__name__, second.__name__) == ("partial", "passed")
    state = SimpleNamespace(global_step=4)
    columns = {"id": ["a", "a"], "trainer_state": state}
    assert first(["abc", "abcdefghij"], **columns) == [0.3, 1.0]
    assert not (tmp_path / "rewards.jsonl").exists()  # written once every kind has scored
    assert second(["abc", "abcdefghij"], **columns) == [0.0, 1.0]
    first(["x"])
    second(["x"])
    lines = [json.loads(x) for x in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    assert lines == [
        {
            "step": 5,
            "id": "a",
            "generation": 0,
            "rewards": {"partial": 0.3, "passed": 0.0},
            "completion": "abc",
        },
        {
            "step": 5,
            "id": "a",
            "generation": 1,
            "rewards": {"partial": 1.0, "passed": 1.0},
            "completion": "abcdefghij",
        },
        {
            "step": None,
            "id": None,
            "generation": 0,
            "rewards": {"partial": 0.1, "passed": 0.0},
            "completion": "x",
        },
    ]


def test_row_lengths_count_what_trl_tokenizes():
    needs("torch")  # the bundled tokenizer loads through mosaic_it.apps.models
    needs("transformers")
    from mosaic_it.apps.models import bundled_hf_tokenizer
    from mosaic_it.apps.training.data import row_lengths

    tok = bundled_hf_tokenizer()
    fmt = PromptFormat("vicuna")
    rows = training_rows(make_records(5, seed=3), fmt)
    expected = [len(tok(r["prompt"] + r["completion"]).input_ids) + 1 for r in rows]  # + EOS
    assert row_lengths(tok, rows, fmt) == expected


def test_on_the_fly_options_take_the_training_length_as_budget(tmp_path):
    config = _config(
        tmp_path,
        max_length=512,
        seed=9,
        mosaic_on_the_fly=True,
        mosaic_options={"wrap_mode": "fix_max", "tokenizer": "elsewhere"},
    )
    options = mosaic_options(config, None, PromptFormat("vicuna"))
    assert options == {"wrap_mode": "fix_max", "seed": 9, "template": "vicuna", "max_tokens": 512}
    assert config.mosaic_options == {"wrap_mode": "fix_max", "tokenizer": "elsewhere"}


def test_rl_rows_in_the_vicuna_format_and_bad_rows_named(tmp_path):
    item = make_eval(make_records(30, seed=5), 1, max_instructions=3).items[0]
    good = tmp_path / "rl.jsonl"
    row = {
        "id": 7,
        "prompt": [{"role": "user", "content": item["prompt"]}],
        "mosaic": item["mosaic"],
    }
    good.write_text(json.dumps(row) + "\n")
    rows = read_rl_rows(str(good), PromptFormat("vicuna"))
    assert rows[0]["id"] == "7"
    assert rows[0]["prompt"] == PromptFormat("vicuna").training_row(item["prompt"], "")["prompt"]
    assert json.loads(rows[0]["mosaic"])["strategy"] == item["mosaic"]["strategy"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Do it."}) + "\n")
    with pytest.raises(InputError, match="an RL row needs 'prompt' and 'mosaic'") as caught:
        read_rl_rows(str(bad), PromptFormat("vicuna"))
    assert "bad.jsonl:1" in str(caught.value)


def test_checkpoints_are_found_and_never_clobbered(tmp_path):
    needs("transformers")
    from mosaic_it.apps.training.resume import find_checkpoint

    out = tmp_path / "out"
    assert find_checkpoint(str(out), None) is None
    with pytest.raises(ValueError, match="no checkpoint-N directory"):
        find_checkpoint(str(out), True)
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoint-3" / "trainer_state.json").write_text("{}")
    with pytest.raises(ValueError, match=r"already holds checkpoints \(checkpoint-3\)"):
        find_checkpoint(str(out), None)
    assert find_checkpoint(str(out), True) == str(out / "checkpoint-3")
    with pytest.raises(ValueError, match="not a checkpoint directory"):
        find_checkpoint(str(out), str(tmp_path))


def test_config_saved_by_an_earlier_release_reads_template_as_prompt_format(tmp_path):
    """Before the rename the prompt format was saved as "template"; it is read under its name
    now, and the name now wins where a file holds both."""
    old = {k: v for k, v in _config(tmp_path).to_dict().items() if k != "prompt_format"}
    assert saved_config({**old, "template": "chat"}) == {**old, "prompt_format": "chat"}
    assert TrainConfig.from_dict({**old, "template": "chat"}).prompt_format == "chat"
    both = {**old, "template": "chat", "prompt_format": "vicuna"}
    assert TrainConfig.from_dict(both).prompt_format == "vicuna"
    assert "template" not in TrainConfig.from_dict(both).to_dict()
