"""Fine-tuning on original or mosaic data: ``mosaic-it train`` (SFT, or GRPO on mosaic prompts).

The trainer is TRL's ``SFTTrainer`` on *prompt-completion* rows (see
:class:`mosaic_it.apps.models.PromptFormat`). For such rows TRL tokenizes the prompt and the
prompt + completion + EOS, and sets the label of every token of the common prefix (BOS,
template, instruction) to -100: the loss covers the response tokens and the EOS only, as in
FastChat. ``tests/apps/test_train.py`` checks this token by token on the installed TRL.

Sequences are padded per micro-batch (dynamic padding), not to the maximum length: the
loss is the same, the cost is lower (``mosaic-it cost`` shows how much).

Multi-GPU runs use the same code through accelerate::

    accelerate launch --num_processes 8 -m mosaic_it.cli train DATA --model M --output-dir OUT

``--batch-size`` is the global batch (sequences per optimizer step); gradient accumulation
makes up the difference from ``--micro-batch-size`` x the number of processes.

With ``--mosaic-on-the-fly`` DATA holds the original records and every training epoch trains
on a freshly drawn mosaic epoch (same seed, same draws as ``mosaic-it mosaic --epochs N``), so
nothing is stored and no epoch repeats a grouping. The samples are counted once before
training so that the learning-rate schedule knows the number of steps.

``--method grpo`` trains with TRL's ``GRPOTrainer`` on prompt-only rows from
``mosaic-it make-rl-prompts`` (``prompt`` + ``mosaic``): every prompt is answered
``--num-generations`` times, each answer is graded against its spec by the rewards of
:mod:`mosaic_it.rewards`, and the policy moves toward the answers that score above their group's
mean. ``--batch-size`` then counts completions per optimizer step (a multiple of
``--num-generations``). Every completion's reward is appended to
``OUTPUT/mosaic_it_rewards.jsonl`` (step, row id, reward function, value) as it is computed.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mosaic_it.apps.models import (
    PROMPT_FORMATS,
    ModelError,
    PromptFormat,
    check_vocab,
    load_model,
    load_tokenizer_for,
    prompt_format,
    require_torch,
    resolve_model,
)
from mosaic_it.io.files import InputError, InvalidRecord, iter_raw, read_records, write_json
from mosaic_it.io.outputs import content_digest
from mosaic_it.records import Record

CONFIG_FILE = "mosaic_it_train.json"
EXIT_BAD_INPUT = 2
# options that must not change when a run is resumed (the others may: e.g. --save-steps)
# (the data is compared by content, not by path: see check_resume_config)
RESUME_KEYS = (
    "model",
    "tokenizer",
    "template",
    "epochs",
    "batch_size",
    "max_length",
    "lora_r",
    "lora_alpha",
    "lora_targets",
    "seed",
    "mosaic_on_the_fly",
    "mosaic_options",
    "method",
    "num_generations",
    "max_completion_length",
    "rewards",
    "reward_mode",
)
METHODS = ("sft", "grpo")
REWARD_LOG = "mosaic_it_rewards.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run; saved as ``OUTPUT/mosaic_it_train.json``."""

    data: str
    output_dir: str
    model: str
    tokenizer: str | None = None  # None: the model's own
    template: str = "vicuna"  # vicuna | chat (the tokenizer's chat template)
    epochs: float = 3.0  # FastChat's default
    batch_size: int = 128  # sequences per optimizer step, all processes together
    micro_batch_size: int = 4  # sequences per forward pass on one process
    learning_rate: float | None = None  # None: 2e-5 full fine-tuning, 2e-4 LoRA
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_length: int = 2048  # longer sequences are truncated (keeping the start)
    lora_r: int = 0  # 0: full fine-tuning
    lora_alpha: int | None = None  # None: 2 * r
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"
    gradient_checkpointing: bool = False
    dtype: str = "auto"  # auto: bf16 on a GPU that has it, fp32 otherwise
    seed: int = 42
    max_steps: int = -1  # > 0: stop after this many optimizer steps
    save_steps: int = 0  # 0: a checkpoint per epoch
    save_total_limit: int = 2
    logging_steps: int = 10
    mosaic_on_the_fly: bool = False
    mosaic_options: dict[str, Any] | None = None  # MosaicConfig fields for --mosaic-on-the-fly
    on_error: str = "raise"
    method: str = "sft"  # sft | grpo
    num_generations: int = 8  # grpo: completions per prompt (TRL's default)
    max_completion_length: int = 256  # grpo: longest generated completion, in tokens
    rewards: str = "partial"  # grpo: +-joined reward kinds of mosaic_it.rewards (pass, partial)
    reward_mode: str = "strict"  # grpo: the grader's reading mode
    temperature: float = 1.0  # grpo: sampling temperature of the completions

    def __post_init__(self) -> None:
        def bad(what: str) -> None:
            raise ValueError(what)

        if self.template not in PROMPT_FORMATS:
            bad(f"--prompt-format: choose from {', '.join(PROMPT_FORMATS)}, got {self.template!r}")
        if self.epochs <= 0:
            bad(f"--epochs must be positive, got {self.epochs}")
        if self.mosaic_on_the_fly and self.epochs != int(self.epochs):
            bad("--epochs must be a whole number with --mosaic-on-the-fly (one mosaic epoch each)")
        if self.batch_size < 1 or self.micro_batch_size < 1:
            bad("--batch-size and --micro-batch-size must be at least 1")
        if self.batch_size % self.micro_batch_size:
            bad(
                f"--batch-size {self.batch_size} is not a multiple of --micro-batch-size "
                f"{self.micro_batch_size}"
            )
        if self.max_length < 8:
            bad(f"--max-length must be at least 8, got {self.max_length}")
        if self.lora_r < 0:
            bad(f"--lora-r must be 0 (full fine-tuning) or positive, got {self.lora_r}")
        if self.dtype not in ("auto", "bf16", "fp32"):
            bad(f"--dtype: choose from auto, bf16, fp32, got {self.dtype!r}")
        if self.method not in METHODS:
            bad(f"--method: choose from {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "grpo":
            self._check_grpo(bad)

    def _check_grpo(self, bad: Callable[[str], None]) -> None:
        from mosaic_it.rewards import KINDS

        if self.mosaic_on_the_fly:
            bad("--mosaic-on-the-fly is for SFT; GRPO reads rows of mosaic-it make-rl-prompts")
        if self.num_generations < 2:
            bad(
                f"--num-generations must be at least 2 (GRPO compares completions of one "
                f"prompt), got {self.num_generations}"
            )
        if self.batch_size % self.num_generations:
            bad(
                f"--batch-size {self.batch_size} (completions per step) is not a multiple of "
                f"--num-generations {self.num_generations}"
            )
        if self.max_completion_length < 1:
            bad(f"--max-completion-length must be at least 1, got {self.max_completion_length}")
        unknown = [k for k in self.reward_kinds if k not in KINDS]
        if unknown or not self.reward_kinds:
            bad(f"--rewards: a +-joined subset of {'+'.join(KINDS)}, got {self.rewards!r}")
        if self.reward_mode not in ("strict", "loose"):
            bad(f"--reward-mode: choose from strict, loose, got {self.reward_mode!r}")

    @property
    def reward_kinds(self) -> list[str]:
        return [k for k in self.rewards.replace(",", "+").split("+") if k]

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora_r else 2e-5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainResult:
    output_dir: str
    steps: int
    losses: list[tuple[int, float]]  # (step, training loss) as logged
    seconds: float
    rows: int
    truncated: int
    rewards: list[tuple[int, float]] = field(default_factory=list)  # grpo: (step, mean reward)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def read_training_records(path: str, on_error: str = "raise") -> list[Record]:
    """Single-pair records of any input format (Alpaca, ShareGPT, messages, prompt-completion),
    original data or the output of ``mosaic-it mosaic``. Multi-turn records are left out, with
    a warning."""
    invalid: list[InvalidRecord] = []
    records = list(read_records(path, on_error=on_error, invalid=invalid))
    if invalid and _is_main():
        kinds = Counter(i.reason for i in invalid)
        print(
            f"mosaic-it train: warning: {path}: left out "
            + ", ".join(f"{n} {k} record(s)" for k, n in sorted(kinds.items())),
            file=sys.stderr,
        )
    if not records:
        raise InputError(f"{path}: no single-turn records to train on")
    return records


def read_rl_rows(path: str, fmt: PromptFormat) -> list[dict[str, Any]]:
    """GRPO rows (``prompt`` + ``mosaic``, as ``mosaic-it make-rl-prompts`` writes them) in the
    prompt format: a Vicuna text prompt, or the messages for the chat template. The spec is
    kept as JSON text (a table column of objects would merge every row's keys); a row whose
    prompt or spec cannot be used stops the run naming its line."""
    from mosaic_it.verifier.checks import SpecError, load_spec

    rows = []
    for _, where, obj in iter_raw(path):
        if not isinstance(obj, dict) or "prompt" not in obj or "mosaic" not in obj:
            raise InputError(
                f"{where}: an RL row needs 'prompt' and 'mosaic' fields; make rows "
                "with mosaic-it make-rl-prompts"
            )
        messages = obj["prompt"]
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not (
            isinstance(messages, list)
            and messages
            and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
            and messages[-1].get("role") == "user"
        ):
            raise InputError(
                f"{where}: field 'prompt': expected a text or a list of messages "
                "ending with the user's"
            )
        try:
            spec = load_spec(obj["mosaic"])
        except SpecError as exc:
            raise InputError(f"{where}: field 'mosaic': {exc}") from None
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        prompt = fmt.training_row(messages[-1]["content"], "", system)["prompt"]
        row = {
            "prompt": prompt,
            "mosaic": json.dumps(spec.to_dict(), ensure_ascii=False),
            "id": str(obj.get("id", where)),
        }
        if isinstance(obj.get("reference"), str):
            row["reference"] = obj["reference"]
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no RL rows; make some with mosaic-it make-rl-prompts")
    return rows


class RewardLog:
    """A reward function that appends every completion's reward to a JSONL file as it goes."""

    def __init__(self, reward: Callable[..., list[float]], path: Path) -> None:
        self.reward = reward
        self.path = path
        self.__name__ = reward.__name__

    def __call__(self, completions: list[Any], **columns: Any) -> list[float]:
        scores = self.reward(completions, **columns)
        state = columns.get("trainer_state")
        step = state.global_step + 1 if state is not None else None  # the step being made
        ids = columns.get("id") or [None] * len(scores)
        with self.path.open("a", encoding="utf-8") as out:
            for key, value in zip(ids, scores):
                out.write(
                    json.dumps({"step": step, "id": key, "reward": self.__name__, "value": value})
                    + "\n"
                )
        return scores


def training_rows(records: list[Record], fmt: PromptFormat) -> list[dict[str, Any]]:
    return [fmt.training_row(r.prompt, r.output, r.system) for r in records]


def sequence_lengths(tokenizer: Any, rows: list[dict[str, Any]], fmt: PromptFormat) -> list[int]:
    """Token counts of the training sequences (BOS/template/EOS included), as TRL builds them."""
    if fmt.name == "vicuna":
        texts = [r["prompt"] + r["completion"] for r in rows]
        ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [len(x) + 1 for x in ids]  # + EOS
    out = []
    for r in rows:
        ids = tokenizer.apply_chat_template(
            r["prompt"] + r["completion"], tokenize=True, return_dict=True
        )["input_ids"]
        out.append(len(ids))
    return out


class OnTheFlyRows:
    """Rows of freshly drawn mosaic epochs 0..epochs-1, for ``--mosaic-on-the-fly``.

    The samples come from :class:`mosaic_it.hf.MosaicIterable` (records read and counted once;
    epoch ``e`` equals epoch ``e`` of ``mosaic-it mosaic`` with the same options). The trainer
    gets one stream over all epochs, drawn with ``epoch_rows(e)``, rather than the iterable's
    own epoch counter: TRL's preparation peeks at the dataset several times, and every pass
    must replay the same rows (resuming skips into the same stream).
    """

    def __init__(
        self,
        records: list[Record],
        fmt: PromptFormat,
        epochs: int,
        options: dict[str, Any],
        counter: Any,
    ) -> None:
        from mosaic_it.engine.mosaicker import MosaicConfig
        from mosaic_it.hf import MosaicIterable

        self.fmt = fmt
        self.epochs = epochs
        self.config = MosaicConfig.from_dict({**options, "epochs": epochs})
        self.source = MosaicIterable(
            records, self.config, output_format="alpaca", tokenizer=counter, json_mosaic=False
        )
        self.per_epoch = [sum(1 for _ in self.source.epoch_rows(e)) for e in range(epochs)]

    def __len__(self) -> int:
        return sum(self.per_epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for epoch in range(self.epochs):
            for row in self.source.epoch_rows(epoch):
                yield self.fmt.training_row(
                    row["instruction"], row["output"], row.get("system", "")
                )


def _budget_counter(tokenizer: Any) -> Any:
    """A mosaic-it token counter over the training tokenizer's own fast backend."""
    from mosaic_it.budget.tokenizer import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelError("--mosaic-on-the-fly needs a fast (tokenizers-based) tokenizer")
    backend = copy.deepcopy(backend)
    backend.no_truncation()
    backend.no_padding()
    return Tokenizer(
        name=getattr(tokenizer, "name_or_path", "model tokenizer"),
        bos_token=tokenizer.bos_token,
        eos_token=tokenizer.eos_token,
        backend=backend,
    )


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


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
    bf16 = config.dtype == "bf16" or (
        config.dtype == "auto" and cuda and torch.cuda.is_bf16_supported()
    )
    # Full fine-tuning keeps fp32 master weights under bf16 autocast; a LoRA base is frozen,
    # so it may as well sit in bf16.
    load = torch.bfloat16 if bf16 and config.lora_r else torch.float32
    return load, bf16, not cuda


def _world_size() -> int:
    try:
        from accelerate import PartialState
    except ImportError:
        return 1
    return PartialState().num_processes


def _is_main() -> bool:
    try:
        from accelerate import PartialState
    except ImportError:
        return True
    return PartialState().is_main_process


def find_checkpoint(output_dir: str, resume: str | bool | None) -> str | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to clobber one."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if not resume:
        if last is not None:
            raise ValueError(
                f"{output_dir} already holds checkpoints ({Path(last).name}); pass --resume to "
                "continue that run, or choose another --output-dir"
            )
        return None
    if resume is True or resume == "last":
        if last is None:
            raise ValueError(
                f"--resume: no checkpoint-N directory in {output_dir}; run without --resume"
            )
        checkpoint = last
    else:
        checkpoint = str(resume)
        if not (Path(checkpoint) / "trainer_state.json").is_file():
            raise ValueError(
                f"--resume {checkpoint}: not a checkpoint directory (no trainer_state.json)"
            )
    return checkpoint


def check_resume_config(config: TrainConfig) -> None:
    """A resumed run must train what the first run trained."""
    saved_path = Path(config.output_dir) / CONFIG_FILE
    if not saved_path.is_file():
        return
    meta = json.loads(saved_path.read_text(encoding="utf-8"))
    saved, now = meta.get("config", {}), config.to_dict()
    changed = [k for k in RESUME_KEYS if k in saved and saved[k] != now.get(k)]
    if meta.get("data_content", content_digest(config.data)) != content_digest(config.data):
        raise ValueError(
            f"--resume: {config.data} is not the data the run in {config.output_dir} trained on "
            f"(that was {saved.get('data')!r}, with other content); give the same data, or a "
            "new --output-dir"
        )
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {now.get(k)!r}" for k in changed)
        raise ValueError(
            f"--resume: options differ from the run in {config.output_dir} ({details}); use the "
            "same options, or a new --output-dir"
        )


def prepare_run(
    config: TrainConfig, resume: str | bool | None = None, callbacks: tuple[Any, ...] = ()
) -> Run:
    """Load data, model and tokenizer and build the trainer; raises ModelError/ValueError."""
    torch = require_torch()
    try:
        from datasets import Dataset, IterableDataset
        from trl import SFTConfig, SFTTrainer
    except ImportError as exc:
        raise ModelError(
            f'training needs trl and datasets ({exc}); pip install "mosaic-it[train]"'
        ) from None

    if not sys.stderr.isatty():
        import datasets

        datasets.disable_progress_bars()
    checkpoint = find_checkpoint(config.output_dir, resume)
    if checkpoint:
        check_resume_config(config)
    source = resolve_model(config.model)
    grpo = config.method == "grpo"
    records = [] if grpo else read_training_records(config.data, config.on_error)
    tokenizer = load_tokenizer_for(source, config.tokenizer)
    fmt = prompt_format(config.template, tokenizer)
    rl_rows = read_rl_rows(config.data, fmt) if grpo else []
    load_dtype, bf16, cpu = precision(config, torch)
    model = load_model(source, dtype=load_dtype, seed=config.seed)
    check_vocab(model, tokenizer, config.model)

    world = _world_size()
    if config.batch_size % (config.micro_batch_size * world):
        raise ValueError(
            f"--batch-size {config.batch_size} is not a multiple of --micro-batch-size "
            f"{config.micro_batch_size} x {world} processes"
        )
    accumulation = config.batch_size // (config.micro_batch_size * world)
    if grpo:
        return _prepare_grpo(
            config, rl_rows, model, tokenizer, fmt, accumulation, bf16, cpu, checkpoint, callbacks
        )

    max_steps, save = config.max_steps, {"save_strategy": "epoch"}
    if config.mosaic_on_the_fly:
        stream = OnTheFlyRows(
            records,
            fmt,
            int(config.epochs),
            mosaic_options(config, tokenizer, fmt),
            _budget_counter(tokenizer),
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
        lengths = sequence_lengths(tokenizer, rows, fmt)
        rows_n, longest = len(rows), max(lengths)
        truncated = sum(1 for n in lengths if n > config.max_length)
        dataset = Dataset.from_list(rows)
        if config.save_steps:
            save = {"save_strategy": "steps", "save_steps": config.save_steps}
    if truncated and _is_main():
        print(
            f"mosaic-it train: warning: {truncated} of {rows_n} sequences are longer than "
            f"--max-length {config.max_length} (longest {longest}); they lose their ends and EOS. "
            "Mosaic with this model's tokenizer (--tokenizer) and budget, or raise --max-length.",
            file=sys.stderr,
        )

    args = SFTConfig(
        max_steps=max_steps,
        max_length=config.max_length,
        completion_only_loss=True,
        **_common_args(config, accumulation, bf16, cpu),
        **save,
        **_checkpointing(SFTConfig, config.gradient_checkpointing),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=_peft_config(config),
        callbacks=list(callbacks),
    )
    return Run(config, trainer, tokenizer, fmt, rows_n, truncated, longest, checkpoint)


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

    if accumulation * config.micro_batch_size * _world_size() % config.num_generations:
        raise ValueError(
            f"--batch-size {config.batch_size} is not a multiple of "
            f"--num-generations {config.num_generations}"
        )
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_name = REWARD_LOG if _is_main() else f"mosaic_it_rewards.rank{_rank()}.jsonl"
    if checkpoint is None:
        (out / log_name).unlink(missing_ok=True)  # a fresh run: no rewards of another run
    rewards = [
        RewardLog(MosaicReward(kind, mode=config.reward_mode), out / log_name)
        for kind in config.reward_kinds
    ]
    save = {"save_strategy": "epoch"}
    if config.save_steps:
        save = {"save_strategy": "steps", "save_steps": config.save_steps}
    args = GRPOConfig(
        max_steps=config.max_steps,
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
        callbacks=list(callbacks),
    )
    return Run(config, trainer, tokenizer, fmt, len(rows), 0, 0, checkpoint)


def _rank() -> int:
    try:
        from accelerate import PartialState
    except ImportError:
        return 0
    return PartialState().process_index


def _checkpointing(args_class: Any, on: bool) -> dict[str, bool]:
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


def mosaic_options(config: TrainConfig, tokenizer: Any, fmt: PromptFormat) -> dict[str, Any]:
    """MosaicConfig fields for on-the-fly mosaics: the budget is the training length.

    With the Vicuna format the budget counts the Vicuna sequence exactly; with a chat template
    it counts instruction + response and leaves room for the template's own tokens.
    """
    options = dict(config.mosaic_options or {})
    options.setdefault("seed", config.seed)
    if fmt.name == "vicuna":
        options.setdefault("template", "vicuna")
        options.setdefault("max_tokens", config.max_length)
    else:
        empty = fmt.training_row("", "")
        overhead = len(
            tokenizer.apply_chat_template(
                empty["prompt"] + empty["completion"], tokenize=True, return_dict=True
            )["input_ids"]
        )
        options.setdefault("template", "none")
        options.setdefault("max_tokens", config.max_length - overhead - 4)
    options.pop("tokenizer", None)
    return options


def train(
    config: TrainConfig, resume: str | bool | None = None, callbacks: tuple[Any, ...] = ()
) -> TrainResult:
    """Train and save model, tokenizer and config in ``config.output_dir``."""
    torch = require_torch()
    run = prepare_run(config, resume, callbacks)
    out = Path(config.output_dir)
    meta = {
        "config": config.to_dict(),
        "data_content": content_digest(config.data),
        "data": {"rows": run.rows, "truncated": run.truncated, "longest": run.longest},
        "versions": _versions(),
    }
    if _is_main():
        write_json(out / CONFIG_FILE, meta)
    t0 = time.perf_counter()
    logging.getLogger("transformers.trainer").addFilter(TiedWeightsNote())
    try:
        run.trainer.train(resume_from_checkpoint=run.checkpoint)
    except torch.OutOfMemoryError as exc:
        raise ModelError(out_of_memory_message(config, exc)) from None
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
        raise ModelError(out_of_memory_message(config, exc)) from None
    seconds = time.perf_counter() - t0
    run.trainer.save_model(config.output_dir)
    state = run.trainer.state
    losses = [(int(h["step"]), float(h["loss"])) for h in state.log_history if "loss" in h]
    rewards = [(int(h["step"]), float(h["reward"])) for h in state.log_history if "reward" in h]
    if _is_main():
        meta["result"] = {
            "steps": state.global_step,
            "seconds": round(seconds, 2),
            "losses": losses,
        }
        if config.method == "grpo":
            meta["result"]["rewards"] = rewards
        write_json(out / CONFIG_FILE, meta)
    return TrainResult(
        config.output_dir, state.global_step, losses, seconds, run.rows, run.truncated, rewards
    )


class TiedWeightsNote(logging.Filter):
    """Drops the trainer's warning that a resumed checkpoint misses ``lm_head.weight``: a model
    whose output layer shares the embedding's weights saves them once, and loading the
    embedding restores both. Any other missing key is still shown."""

    PREFIX = "There were missing keys in the checkpoint model loaded:"

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith(self.PREFIX):
            return True
        keys = re.findall(r"'([^']+)'", text[len(self.PREFIX) :])
        return not keys or not all(k.endswith("lm_head.weight") for k in keys)


def out_of_memory_message(config: TrainConfig, exc: BaseException) -> str:
    return (
        f"out of memory with --micro-batch-size {config.micro_batch_size} and sequences of up to "
        f"{config.max_length} tokens ({str(exc).splitlines()[0][:160]}). Lower --micro-batch-size "
        "(--batch-size stays the same through gradient accumulation), add "
        "--gradient-checkpointing, lower --max-length, or train LoRA adapters (--lora-r 16)"
    )


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("mosaic-it", "torch", "transformers", "trl", "peft", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def merge_lora(output_dir: str) -> Path:
    """Save the adapter merged into its base model as a plain model in OUTPUT/merged."""
    from mosaic_it.apps.models import ModelSource
    from mosaic_it.apps.models import load_model as _load

    model = _load(ModelSource(output_dir, "adapter", Path(output_dir)))
    merged = model.merge_and_unload()
    target = Path(output_dir) / "merged"
    merged.save_pretrained(str(target))
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(output_dir).save_pretrained(str(target))
    # so that mosaic-it eval prompts the merged model the way it was trained
    (target / CONFIG_FILE).write_bytes((Path(output_dir) / CONFIG_FILE).read_bytes())
    return target
