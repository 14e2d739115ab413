"""The options of a training run (saved as ``OUTPUT/mosaic_it_train.json``) and its result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mosaic_it.apps.prompt_formats import PROMPT_FORMATS

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
            raise ValueError(what)

        if self.threads < 0:
            bad(f"--threads must be 0 (chosen from the idle cores) or more, got {self.threads}")
        if self.prompt_format not in PROMPT_FORMATS:
            bad(
                f"--prompt-format: choose from {', '.join(PROMPT_FORMATS)}, "
                f"got {self.prompt_format!r}"
            )
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
