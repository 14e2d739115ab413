"""TRL's trainers built for a run: SFT on prompt-completion rows, GRPO on mosaic prompts."""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mosaic_it.apps.model_source import ModelError, require_torch, resolve_model
from mosaic_it.apps.models import check_vocab, load_model, load_tokenizer_for, use_bf16
from mosaic_it.apps.prompt_formats import PromptFormat, prompt_format
from mosaic_it.apps.training.callbacks import RewardLog, WarmupNote
from mosaic_it.apps.training.config import REWARD_LOG, TrainConfig
from mosaic_it.apps.training.data import (
    OnTheFlyRows,
    budget_counter,
    mosaic_options,
    read_rl_rows,
    read_training_records,
    row_lengths,
    training_rows,
)
from mosaic_it.apps.training.processes import is_main, rank, world_size
from mosaic_it.apps.training.resume import check_resume_config, find_checkpoint
from mosaic_it.errors import InputError, OptionError
from mosaic_it.records import Record

NOTES = logging.getLogger(__name__)  # on stderr at the command line, as -q/-v say


@dataclass
class Run:
    """Everything built for a training run, before ``trainer.train()``."""

    config: TrainConfig
    trainer: Any
    tokenizer: Any
    fmt: PromptFormat
    rows: int
    truncated: int
    longest: int
    checkpoint: str | None  # the checkpoint a resumed run starts from


def precision(config: TrainConfig, torch: Any) -> tuple[Any, bool, bool]:
    """(dtype to load the weights in, bf16 autocast, CPU only) for this machine."""
    cuda = torch.cuda.is_available()
    bf16 = use_bf16(config.dtype, torch)
    # Full fine-tuning keeps fp32 master weights under bf16 autocast; a LoRA base is frozen,
    # so it may as well sit in bf16.
    load = torch.bfloat16 if bf16 and config.lora_r else torch.float32
    return load, bf16, not cuda


def prepare_run(
    config: TrainConfig, resume: str | bool | None = None, callbacks: tuple[Any, ...] = ()
) -> Run:
    """Load data, model and tokenizer and build the trainer; raises ModelError/ValueError.

    (Over 60 lines: one straight sequence of loading steps, in the order their errors should
    show; the data and the GRPO trainer are built by sft_data and _prepare_grpo.)
    """
    torch = require_torch()
    try:
        import datasets
        from trl import SFTConfig, SFTTrainer
    except ImportError as exc:
        raise ModelError(
            f'training needs trl and datasets ({exc}); pip install "mosaic-it[train]"'
        ) from None

    if not sys.stderr.isatty():
        datasets.disable_progress_bars()
    checkpoint = find_checkpoint(config.output_dir, resume)
    if checkpoint:
        check_resume_config(config)
    source = resolve_model(config.model)
    grpo = config.method == "grpo"
    records = [] if grpo else read_training_records(config.data, config.on_error)
    tokenizer = load_tokenizer_for(source, config.tokenizer)
    fmt = prompt_format(config.prompt_format, tokenizer)
    rl_rows = read_rl_rows(config.data, fmt) if grpo else []
    check_one_step(config, len(rl_rows) if grpo else len(records))
    load_dtype, bf16, cpu = precision(config, torch)
    model = load_model(source, dtype=load_dtype, seed=config.seed)
    check_vocab(model, tokenizer, config.model)

    world = world_size()
    if config.batch_size % (config.micro_batch_size * world):
        raise OptionError(
            f"--batch-size {config.batch_size} is not a multiple of --micro-batch-size "
            f"{config.micro_batch_size} x {world} processes"
        )
    accumulation = config.batch_size // (config.micro_batch_size * world)
    if grpo:
        return _prepare_grpo(
            config, rl_rows, model, tokenizer, fmt, accumulation, bf16, cpu, checkpoint, callbacks
        )

    data = sft_data(config, records, tokenizer, fmt)
    if data.truncated and is_main():
        NOTES.warning(
            f"mosaic-it train: warning: {data.truncated} of {data.rows} sequences are longer "
            f"than --max-length {config.max_length} (longest {data.longest}); they lose their "
            "ends and EOS. Mosaic with this model's tokenizer (--tokenizer) and budget, or raise "
            "--max-length."
        )

    args = SFTConfig(
        max_steps=data.max_steps,
        max_length=config.max_length,
        completion_only_loss=True,
        **_common_args(config, accumulation, bf16, cpu),
        **data.save,
        **_checkpointing(SFTConfig, config.gradient_checkpointing),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data.dataset,
        processing_class=tokenizer,
        peft_config=_peft_config(config),
        callbacks=_callbacks(callbacks),
    )
    return Run(config, trainer, tokenizer, fmt, data.rows, data.truncated, data.longest, checkpoint)


def check_one_step(config: TrainConfig, rows: int) -> None:
    """Refuse, before the model is loaded, a run that could not take one optimizer step.

    GRPO draws ``--batch-size / --num-generations`` distinct prompts for each step and drops
    the prompts left over at the end of an epoch (TRL's ``RepeatSampler``): fewer prompts than
    that give no step at all. SFT steps once per epoch even on one partial batch, but not on
    no rows."""
    if config.method == "grpo":
        per_step = config.batch_size // config.num_generations
        if rows < per_step:
            raise OptionError(
                f"{config.data}: {rows} prompt(s) cannot fill one optimizer step: "
                f"--batch-size {config.batch_size} completions are {per_step} prompts x "
                f"--num-generations {config.num_generations}, and an epoch's prompts left "
                f"over are dropped; give at least {per_step} prompts (make-rl-prompts --n) "
                f"or a --batch-size of at most {rows * config.num_generations}"
            )
    elif rows < 1:
        raise InputError(f"{config.data}: no training rows: no optimizer step to take")


@dataclass
class SftData:
    """The dataset of an SFT run, what it holds, and the steps and checkpoints it implies."""

    dataset: Any
    rows: int
    truncated: int  # sequences longer than --max-length
    longest: int
    max_steps: int
    save: dict[str, Any]  # save_strategy (and save_steps) for the trainer's arguments


def sft_data(
    config: TrainConfig, records: list[Record], tokenizer: Any, fmt: PromptFormat
) -> SftData:
    """The rows of the records (or, with --mosaic-on-the-fly, of fresh mosaic epochs)."""
    from datasets import Dataset, IterableDataset

    max_steps = config.max_steps
    save: dict[str, Any] = {"save_strategy": "epoch"}
    if config.mosaic_on_the_fly:
        stream = OnTheFlyRows(
            records,
            fmt,
            int(config.epochs),
            mosaic_options(config, tokenizer, fmt),
            budget_counter(tokenizer),
        )
        rows_n = len(stream)
        truncated, longest = 0, 0  # the mosaic budget is the training length: nothing to cut
        dataset = IterableDataset.from_generator(stream.__iter__)
        steps = math.ceil(rows_n / config.batch_size)
        max_steps = steps if max_steps <= 0 else min(max_steps, steps)
        per_epoch = max(1, math.ceil(stream.per_epoch[0] / config.batch_size))
        save = {"save_strategy": "steps", "save_steps": config.save_steps or per_epoch}
    else:
        rows = training_rows(records, fmt)
        lengths = row_lengths(tokenizer, rows, fmt)
        rows_n, longest = len(rows), max(lengths)
        truncated = sum(1 for n in lengths if n > config.max_length)
        dataset = Dataset.from_list(rows)
        if config.save_steps:
            save = {"save_strategy": "steps", "save_steps": config.save_steps}
    return SftData(dataset, rows_n, truncated, longest, max_steps, save)


def _common_args(config: TrainConfig, accumulation: int, bf16: bool, cpu: bool) -> dict[str, Any]:
    """Trainer arguments SFT and GRPO share."""
    return dict(
        output_dir=config.output_dir,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=config.lr,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the steps
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        use_cpu=cpu,
        report_to="none",
        disable_tqdm=not sys.stderr.isatty(),
        dataloader_num_workers=0,
    )


def _peft_config(config: TrainConfig) -> Any:
    """LoRA adapters with --lora-r, else None (full fine-tuning)."""
    if not config.lora_r:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise ModelError('--lora-r needs peft: pip install "mosaic-it[train]"') from None
    targets = config.lora_targets
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha or 2 * config.lora_r,
        lora_dropout=config.lora_dropout,
        target_modules=targets
        if targets == "all-linear"
        else [t.strip() for t in targets.split(",")],
        task_type="CAUSAL_LM",
    )


def _prepare_grpo(
    config: TrainConfig,
    rows: list[dict[str, Any]],
    model: Any,
    tokenizer: Any,
    fmt: PromptFormat,
    accumulation: int,
    bf16: bool,
    cpu: bool,
    checkpoint: str | None,
    callbacks: tuple[Any, ...],
) -> Run:
    """GRPO on mosaic prompts, graded by the rewards of :mod:`mosaic_it.rewards`."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from mosaic_it.rewards import MosaicReward

    if accumulation * config.micro_batch_size * world_size() % config.num_generations:
        raise OptionError(
            f"--batch-size {config.batch_size} is not a multiple of "
            f"--num-generations {config.num_generations}"
        )
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_name = REWARD_LOG if is_main() else f"mosaic_it_rewards.rank{rank()}.jsonl"
    if checkpoint is None:
        (out / log_name).unlink(missing_ok=True)  # a fresh run: no rewards of another run
    rewards = RewardLog(
        [MosaicReward(kind, mode=config.reward_mode) for kind in config.reward_kinds],
        out / log_name,
    ).wrap()
    save: dict[str, Any] = {"save_strategy": "epoch"}
    if config.save_steps:
        save = {"save_strategy": "steps", "save_steps": config.save_steps}
    curriculum = any("level" in row for row in rows)
    if curriculum and is_main():
        NOTES.info(
            "mosaic-it train: the rows have curriculum levels: trained in the file's order, "
            "easiest first (not shuffled)"
        )
    args = GRPOConfig(
        max_steps=config.max_steps,
        shuffle_dataset=not curriculum,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        **_common_args(config, accumulation, bf16, cpu),
        **save,
        **_checkpointing(GRPOConfig, config.gradient_checkpointing),
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_peft_config(config),
        callbacks=_callbacks(callbacks),
    )
    return Run(config, trainer, tokenizer, fmt, len(rows), 0, 0, checkpoint)


def _callbacks(callbacks: tuple[Any, ...]) -> list[Any]:
    """The trainer's callbacks: the caller's, after the note on what warm-up does."""
    return [WarmupNote(), *callbacks]


def _checkpointing(args_class: Any, on: bool) -> dict[str, Any]:
    """Activation checkpointing, set explicitly (TRL's default is on; it slows small runs).

    transformers 5 renamed ``gradient_checkpointing`` to ``activation_checkpointing``.
    """
    names = {f.name for f in fields(args_class)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    return {key: on}
