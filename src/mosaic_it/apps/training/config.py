"""The options of a training run (saved as ``OUTPUT/mosaic_it_train.json``) and its result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mosaic_it.apps.prompt_formats import PROMPT_FORMATS
from mosaic_it.errors import OptionError
from mosaic_it.limits import MAX_TEMPERATURE, MAX_TRAIN_EPOCHS, bound

CONFIG_FILE = "mosaic_it_train.json"
# options that must not change when a run is resumed (the others may: e.g. --save-steps)
# (the data is compared by content, not by path: see check_resume_config)
RESUME_KEYS = (
    "model",
    "tokenizer",
    "prompt_format",
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

# keys that earlier releases wrote in CONFIG_FILE, by their name now: read, never written
# ("template" named the prompt format before --template came to mean the chat template)
RENAMED_KEYS = {"template": "prompt_format"}


def saved_config(config: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` of a CONFIG_FILE with the keys of earlier releases under their names
    now, so that runs saved before a rename still resume and still say how they prompt."""
    out = dict(config)
    for old, new in RENAMED_KEYS.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run; saved as ``OUTPUT/mosaic_it_train.json``."""

    data: str
    output_dir: str
    model: str
    tokenizer: str | None = None  # None: the model's own
    prompt_format: str = "vicuna"  # vicuna | chat (the tokenizer's chat template)
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
    reward_mode: str = "loose"  # grpo: the grader's reading mode (the rewards' and score's default)
    temperature: float = 1.0  # grpo: sampling temperature of the completions
    threads: int = 0  # torch threads on CPU (0: the usable cores not kept busy, as eval)

    def __post_init__(self) -> None:
        def bad(what: str) -> None:
            raise OptionError(what)

        if self.threads < 0:
            bad(f"--threads must be 0 (chosen from the idle cores) or more, got {self.threads}")
        if self.prompt_format not in PROMPT_FORMATS:
            bad(
                f"--prompt-format: choose from {', '.join(PROMPT_FORMATS)}, "
                f"got {self.prompt_format!r}"
            )
        self._check_numbers()
        if self.mosaic_on_the_fly and self.epochs != int(self.epochs):
            bad("--epochs must be a whole number with --mosaic-on-the-fly (one mosaic epoch each)")
        if self.batch_size % self.micro_batch_size:
            bad(
                f"--batch-size {self.batch_size} is not a multiple of --micro-batch-size "
                f"{self.micro_batch_size}"
            )
        if self.dtype not in ("auto", "bf16", "fp32"):
            bad(f"--dtype: choose from auto, bf16, fp32, got {self.dtype!r}")
        if self.method not in METHODS:
            bad(f"--method: choose from {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "grpo":
            self._check_grpo(bad)

    def _check_numbers(self) -> None:
        """Every numeric option within bounds that say why (:func:`mosaic_it.limits.bound`)."""
        bound(
            "--epochs",
            self.epochs,
            above=0,
            at_most=MAX_TRAIN_EPOCHS,
            why="passes over the data; a fraction trains on part of one",
        )
        for name, value in (
            ("--batch-size", self.batch_size),
            ("--micro-batch-size", self.micro_batch_size),
        ):
            bound(name, value, at_least=1, whole=True)
        if self.learning_rate is not None:
            bound(
                "--lr",
                self.learning_rate,
                above=0,
                at_most=1,
                why="a step of the weights against the gradient",
            )
        bound(
            "--warmup-ratio",
            self.warmup_ratio,
            at_least=0,
            below=1,
            why="a share of the optimizer steps",
        )
        bound(
            "--weight-decay",
            self.weight_decay,
            at_least=0,
            at_most=1,
            why="AdamW's share of each weight removed per step, times the learning rate",
        )
        bound(
            "--max-length",
            self.max_length,
            at_least=8,
            whole=True,
            why="a prompt and a response need a few tokens each",
        )
        bound("--lora-r", self.lora_r, at_least=0, whole=True, why="0: full fine-tuning")
        if self.lora_alpha is not None:
            bound("--lora-alpha", self.lora_alpha, at_least=1, whole=True)
        bound(
            "--lora-dropout",
            self.lora_dropout,
            at_least=0,
            below=1,
            why="the share of LoRA inputs zeroed",
        )
        bound("--seed", self.seed, whole=True)
        if self.max_steps != -1:
            bound(
                "--max-steps",
                self.max_steps,
                at_least=1,
                whole=True,
                why="or -1 (the default): every epoch",
            )
        bound(
            "--save-steps", self.save_steps, at_least=0, whole=True, why="0: a checkpoint per epoch"
        )
        bound(
            "--save-total-limit",
            self.save_total_limit,
            at_least=1,
            whole=True,
            why="--resume needs a checkpoint kept",
        )
        bound("--logging-steps", self.logging_steps, at_least=1, whole=True)
        bound("--num-generations", self.num_generations, at_least=1, whole=True)
        bound("--max-completion-length", self.max_completion_length, at_least=1, whole=True)
        bound(
            "--temperature",
            self.temperature,
            above=0,
            at_most=MAX_TEMPERATURE,
            why="completions are sampled from the logits divided by it",
        )

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
        """The config a CONFIG_FILE holds (one an earlier release wrote too)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved_config(d).items() if k in known})


@dataclass
class TrainResult:
    output_dir: str
    steps: int
    losses: list[tuple[int, float]]  # (step, training loss) as logged
    seconds: float
    rows: int
    truncated: int
    # grpo: (step, {reward name: mean}), each reward kind apart
    rewards: list[tuple[int, dict[str, float]]] = field(default_factory=list)
