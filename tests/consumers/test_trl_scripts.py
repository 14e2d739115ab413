"""mosaic-it wired into TRL the way a user's script wires it: TRL's own ``GRPOTrainer`` and
``SFTTrainer`` built in the test, the project's rewards and on-the-fly dataset handed to them,
a tiny randomly initialised Llama on CPU. Skipped without the train extra."""

from __future__ import annotations

import json
import math

import pytest

from ..conftest import needs

needs("torch")
trl = needs("trl")
datasets = needs("datasets")

import torch

from mosaic_it import MosaicConfig
from mosaic_it.apps.model_source import TINY_LLAMA, resolve_model
from mosaic_it.apps.models import load_model, load_tokenizer_for
from mosaic_it.cli.main import main
from mosaic_it.hf import MosaicIterable
from mosaic_it.io.readers import example_path
from mosaic_it.records import SpecError
from mosaic_it.rewards import MosaicReward, mosaic_partial_reward, mosaic_pass_reward
from mosaic_it.verifier.reading import reference_answers
from mosaic_it.verifier.spec import load_spec

torch.set_num_threads(2)

# the tiny model's tokenizer has no chat template; a user's model brings its own
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def tiny_model():
    source = resolve_model(TINY_LLAMA)
    tokenizer = load_tokenizer_for(source)
    tokenizer.chat_template = TEMPLATE
    return load_model(source), tokenizer


def common(tmp_path, **kw):
    return dict(
        output_dir=str(tmp_path / "out"),
        learning_rate=1e-3,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        **kw,
    )


@pytest.fixture(scope="module")
def rl_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl")
    records = [json.loads(line) for line in example_path().read_text().splitlines()]
    (root / "train.json").write_text(json.dumps(records[:90]))
    (root / "held.json").write_text(json.dumps(records[90:]))
    out = root / "rl.jsonl"
    args = ["make-rl-prompts", str(root / "train.json"), str(out), "--held-out"]
    args += [str(root / "held.json"), "--n", "8", "--max-instructions", "3", "-q"]
    assert main(args) == 0
    return out


def test_content_reward_reads_the_reference_column(rl_file):
    rows = datasets.load_dataset("json", data_files=str(rl_file), split="train")
    content = MosaicReward("partial", content=True)
    right = list(rows["reference"])
    scores = content(right, mosaic=rows["mosaic"], reference=rows["reference"])
    assert scores == [1.0] * len(right)
    # the first two answers' texts swapped under their labels: the layout is right, the
    # content is not
    raw = [json.loads(line) for line in rl_file.read_text().splitlines()]
    keep = [i for i, row in enumerate(raw) if len(row["mosaic"]["answer_order"]) >= 2]
    assert len(keep) >= 4
    two = rows.select(keep)
    swapped = []
    for i in keep:
        row = raw[i]
        spec = load_spec(row["mosaic"])
        refs = reference_answers(spec, row["reference"])
        a, b = (refs[n - 1] for n in spec.answer_order[:2])
        swapped.append(row["reference"].replace(a, "\x00").replace(b, a).replace("\x00", b))
    layout = mosaic_partial_reward(swapped, mosaic=two["mosaic"])
    checked = content(swapped, mosaic=two["mosaic"], reference=two["reference"])
    # the content reward takes off what the layout reward gives for the swapped texts (it
    # only fails an answer on clear evidence that it answers another instruction)
    assert all(c <= lay for c, lay in zip(checked, layout))
    assert sum(c < lay for c, lay in zip(checked, layout)) >= len(keep) - 1, (checked, layout)
    with pytest.raises(SpecError, match="'reference' column"):
        content(right, mosaic=rows["mosaic"])


def test_grpo_trainer_with_the_pass_partial_and_content_rewards(rl_file, tmp_path):
    rows = datasets.load_dataset("json", data_files=str(rl_file), split="train")
    model, tokenizer = tiny_model()
    content = MosaicReward("partial", content=True)
    args = trl.GRPOConfig(
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        **common(tmp_path),
    )
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=[mosaic_pass_reward, mosaic_partial_reward, content],
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == 2
    for name in ("mosaic_pass", "mosaic_partial", "mosaic_partial_content"):
        assert all(0.0 <= h[f"rewards/{name}/mean"] <= 1.0 for h in logged)


def test_sft_trainer_trains_epoch_e_on_the_command_lines_epoch_e(tmp_path):
    records = [json.loads(line) for line in example_path().read_text().splitlines()][:48]
    source = tmp_path / "records.json"
    source.write_text(json.dumps(records))
    options = ["--epochs", "2", "--seed", "7", "--max-tokens", "256", "--max-instructions", "4"]
    assert main(["mosaic", str(source), str(tmp_path / "cli.jsonl"), *options, "-q"]) == 0
    cli = [json.loads(line) for line in (tmp_path / "cli.jsonl").read_text().splitlines()]

    # the user's script: the iterable's datasets view straight into SFTTrainer
    config = MosaicConfig(epochs=2, seed=7, max_tokens=256, max_instructions=4)
    stream = MosaicIterable(records, config, output_format="prompt-completion")
    batch = 8
    per_epoch = [sum(1 for _ in stream.epoch_rows(e)) for e in range(2)]
    model, tokenizer = tiny_model()
    args = trl.SFTConfig(
        max_steps=sum(math.ceil(n / batch) for n in per_epoch),
        per_device_train_batch_size=batch,
        max_length=512,
        remove_unused_columns=False,  # keeps the spec, for this test to read
        **common(tmp_path),
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=stream.to_iterable_dataset(),
        processing_class=tokenizer,
    )
    trained: list[dict] = []
    collate = trainer.data_collator

    def recording(examples):
        trained.extend(json.loads(e.pop("mosaic")) for e in examples)
        return collate(examples)

    trainer.data_collator = recording
    trainer.train()
    groups = [(s["epoch"], s["sources"]) for s in trained]
    assert groups == [(s["mosaic"]["epoch"], s["mosaic"]["sources"]) for s in cli]
    assert {e for e, _ in groups} == {0, 1} and len(groups) == sum(per_epoch)
