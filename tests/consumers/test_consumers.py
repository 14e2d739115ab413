"""The outputs as their consumers load them: datasets, TRL, FastChat, LLaMA-Factory.

Each consumer is used through its own code (skipped when it is not installed): every sample
our budget admitted must come through whole, neither truncated nor fully masked, and its
length must be the one in ``mosaic.tokens``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import SimpleNamespace

import pytest

from mosaic_it.cli.main import main
from mosaic_it.io.readers import example_path

from ..chat_fixtures import hf_tokenizer, qwen_dir  # noqa: F401 - fixture
from ..conftest import needs

datasets = needs("datasets")
BUDGET = 400


def run(*argv: str) -> None:
    assert (
        main(
            ["mosaic", *argv, "-q", "--workers", "1", "--epochs", "1", "--max-tokens", str(BUDGET)]
        )
        == 0
    )


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The bundled example with a system prompt on every third record."""
    d = tmp_path_factory.mktemp("consumers")
    rows = rows_of(example_path())
    for i, r in enumerate(rows):
        if i % 3 == 0:
            r["system"] = "You are a careful assistant. Keep every answer short."
    (d / "with_system.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_datasets_load_every_output(inputs):
    for fmt in ("alpaca", "sharegpt", "messages", "prompt-completion"):
        for suffix, loader in ((".jsonl", "json"), (".json", "json"), (".parquet", "parquet")):
            out = inputs / f"load-{fmt}{suffix}"
            stats = inputs / "stats.json"
            run(
                str(inputs / "with_system.jsonl"),
                str(out),
                "--output-format",
                fmt,
                "--keep-originals",
                "--stats",
                str(stats),
            )
            written = json.loads(stats.read_text())["output"]["rows"]
            ds = datasets.load_dataset(loader, data_files=str(out), split="train")
            assert "mosaic" in ds.column_names and written["originals"] > 100
            assert sum(m is None for m in ds["mosaic"]) == written["originals"]
            assert len(ds) == written["samples"] + written["originals"]


@pytest.mark.parametrize("fmt", ["messages", "prompt-completion"])
def test_trl_sft_keeps_every_sample_whole(inputs, qwen_dir, fmt):  # noqa: F811
    needs("torch")
    trl = needs("trl")
    transformers = needs("transformers")
    out = inputs / f"trl-{fmt}.jsonl"
    run(
        str(inputs / "with_system.jsonl"),
        str(out),
        "--output-format",
        fmt,
        "--template",
        "auto",
        "--tokenizer",
        str(qwen_dir),
    )
    tok = hf_tokenizer(qwen_dir)
    model = transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    args = trl.SFTConfig(
        output_dir=str(inputs / "trl-run"),
        max_length=BUDGET,
        report_to=[],
        bf16=False,
        use_cpu=True,
    )
    prepared = trl.SFTTrainer(
        model=model, args=args, train_dataset=ds, processing_class=tok
    ).train_dataset
    assert len(prepared) == len(ds)  # nothing dropped as fully masked
    lengths = [len(ids) for ids in prepared["input_ids"]]
    assert lengths == [m["tokens"] for m in ds["mosaic"]]  # nothing truncated: the same lengths
    assert max(lengths) <= BUDGET
    assert all(any(label != -100 for label in labels) for labels in prepared["labels"])


def _fastchat_tokenizer(transformers):
    """The bundled tokenizer as a transformers Llama-style tokenizer: BOS added, "</s>" special."""
    from tokenizers import processors

    from mosaic_it import load_tokenizer

    backend = copy.deepcopy(load_tokenizer().backend)
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<unk>",
        model_max_length=BUDGET,
    )
    tok.legacy = False
    return tok


def test_fastchat_vicuna_preprocessing_keeps_every_sample_whole(inputs):
    needs("torch")
    transformers = needs("transformers")
    if importlib.util.find_spec("fastchat") is None:
        pytest.skip("needs FastChat: pip install --no-deps fschat==0.2.36")
    from fastchat.train.train import preprocess

    # FastChat's trainer reads human/gpt turns only, with its default system message
    out = inputs / "fastchat.json"
    run(str(example_path()), str(out), "--output-format", "sharegpt", "--keep-originals")
    rows = json.loads(out.read_text())
    tok = _fastchat_tokenizer(transformers)
    batch = preprocess([r["conversations"] for r in rows], tok)
    lengths = batch["attention_mask"].sum(1).tolist()
    mosaics = [(n, r["mosaic"]["tokens"]) for n, r in zip(lengths, rows) if r["mosaic"]]
    assert all(n == tokens for n, tokens in mosaics) and len(mosaics) > 10
    assert max(lengths) <= BUDGET
    # a tokenization mismatch makes FastChat mask a whole sample: none is
    assert not any(bool((labels == -100).all()) for labels in batch["labels"])


def _import_llamafactory():
    needs("torch")
    if importlib.util.find_spec("llamafactory") is None:
        pytest.skip("needs LLaMA-Factory: pip install --no-deps llamafactory==0.9.5")
    if importlib.util.find_spec("torchaudio") is None:
        # its multimodal plugin imports torchaudio at import time; text data never uses it
        stub = types.ModuleType("torchaudio")
        stub.__spec__ = ModuleSpec("torchaudio", None)
        sys.modules.setdefault("torchaudio", stub)
    try:
        from llamafactory.data.loader import _load_single_dataset
        from llamafactory.data.parser import get_dataset_list
        from llamafactory.data.processor.supervised import SupervisedDatasetProcessor
        from llamafactory.data.template import get_template_and_fix_tokenizer
    except ImportError as exc:  # installed without its dependencies; the train extra has them
        pytest.skip(f"llamafactory's data modules need {exc.name}")

    return (
        get_dataset_list,
        _load_single_dataset,
        get_template_and_fix_tokenizer,
        SupervisedDatasetProcessor,
    )


def test_llamafactory_reads_the_dataset_info_entry_and_keeps_samples_whole(inputs, qwen_dir):  # noqa: F811
    get_dataset_list, load_single, get_template, Processor = _import_llamafactory()
    data = inputs / "lf"
    data.mkdir()
    info = data / "dataset_info.json"
    for fmt in ("alpaca", "sharegpt", "messages"):
        run(
            str(inputs / "with_system.jsonl"),
            str(data / f"{fmt}.jsonl"),
            "--output-format",
            fmt,
            "--keep-originals",
            "--template",
            "auto",
            "--tokenizer",
            str(qwen_dir),
            "--dataset-info",
            str(info),
        )
    data_args = SimpleNamespace(
        dataset_dir=str(data),
        streaming=False,
        preprocessing_num_workers=None,
        max_samples=None,
        overwrite_cache=True,
        media_dir=str(data),
        template="qwen3",
        cutoff_len=BUDGET,
        tool_format=None,
        default_system=None,
        enable_thinking=True,
        train_on_prompt=False,
        mask_history=False,
        neat_packing=False,
        preserve_thinking=False,
    )
    model_args = SimpleNamespace(cache_dir=None, hf_hub_token=None)
    training_args = SimpleNamespace(local_process_index=0, dataloader_num_workers=0, seed=0)
    tok = copy.deepcopy(hf_tokenizer(qwen_dir))
    template = get_template(tok, data_args)
    for fmt in ("alpaca", "sharegpt", "messages"):
        rows = rows_of(data / f"{fmt}.jsonl")
        attr = get_dataset_list([fmt], str(data))[0]
        aligned = load_single(attr, model_args, data_args, training_args)
        assert len(aligned) == len(rows)
        for row, a in zip(rows[:40], aligned):  # read as we meant: prompt, response, system
            assert a["_prompt"][-1]["role"] == "user" and a["_response"][0]["role"] == "assistant"
            if row["mosaic"] and row["mosaic"]["instructions"] > 1:
                assert "\n" in a["_prompt"][-1]["content"]
        systems = [a["_system"] for a in aligned]
        assert sum(bool(s) for s in systems) > 0
        processed = Processor(template=template, tokenizer=tok, processor=None, data_args=data_args)
        out = processed.preprocess_dataset({k: aligned[k] for k in aligned.column_names})
        lengths = [len(ids) for ids in out["input_ids"]]
        tokens = [r["mosaic"]["tokens"] for r in rows if r["mosaic"]]  # samples come first
        assert lengths[: len(tokens)] == tokens
        assert max(lengths) <= BUDGET
        assert not any(all(label == -100 for label in labels) for labels in out["labels"])
