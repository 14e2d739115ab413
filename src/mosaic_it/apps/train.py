"""Fine-tuning on original or mosaic data: ``mosaic-it train`` (SFT, or GRPO on mosaic prompts).

The trainer is TRL's ``SFTTrainer`` on *prompt-completion* rows (see
:class:`mosaic_it.apps.prompt_formats.PromptFormat`). For such rows TRL tokenizes the prompt and the
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

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mosaic_it.apps.models import TINY_LLAMA, ModelError, require_torch
from mosaic_it.apps.prompt_formats import PROMPT_FORMATS
from mosaic_it.apps.training.callbacks import RewardLog, TiedWeightsNote
from mosaic_it.apps.training.config import (
    CONFIG_FILE,
    METHODS,
    RESUME_KEYS,
    REWARD_LOG,
    TrainConfig,
    TrainResult,
)
from mosaic_it.apps.training.data import (
    OnTheFlyRows,
    mosaic_options,
    read_rl_rows,
    read_training_records,
    training_rows,
)
from mosaic_it.apps.training.processes import is_main as _is_main
from mosaic_it.apps.training.resume import check_resume_config, find_checkpoint
from mosaic_it.apps.training.trainers import Run, precision, prepare_run
from mosaic_it.io.files import write_json
from mosaic_it.io.outputs import Output, RunInterrupted, content_digest, guard

# the training pieces live in mosaic_it.apps.training; these names stay importable from here
__all__ = [
    "CONFIG_FILE",
    "METHODS",
    "PROMPT_FORMATS",
    "RESUME_KEYS",
    "REWARD_LOG",
    "TINY_LLAMA",
    "OnTheFlyRows",
    "RewardLog",
    "Run",
    "TiedWeightsNote",
    "TrainConfig",
    "TrainResult",
    "check_resume_config",
    "find_checkpoint",
    "merge_lora",
    "mosaic_options",
    "out_of_memory_message",
    "precision",
    "prepare_run",
    "read_rl_rows",
    "read_training_records",
    "train",
    "training_rows",
]


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


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def add_parser(sub: Any) -> Callable[[argparse.Namespace], int]:
    d = TrainConfig(data="", output_dir="", model="")
    p = sub.add_parser(
        "train",
        help="fine-tune a causal LM on original or mosaic data (needs mosaic-it[train])",
        description="Supervised fine-tuning with TRL: loss on the response tokens and EOS only. "
        "Multi-GPU: accelerate launch -m mosaic_it.cli train ...",
    )
    p.add_argument(
        "data", help="Alpaca JSON/JSONL: original records, or the output of mosaic-it mosaic"
    )
    p.add_argument(
        "--model",
        required=True,
        help=f"model directory, .gguf file, Hub id, or {TINY_LLAMA} (a random tiny Llama)",
    )
    p.add_argument(
        "--output-dir", required=True, help="checkpoints, final model, tokenizer and config"
    )
    p.add_argument("--tokenizer", help="tokenizer directory or Hub id (default: the model's own)")
    p.add_argument(
        "--template",
        choices=PROMPT_FORMATS,
        default=d.template,
        help="vicuna: FastChat Vicuna v1.1; chat: the tokenizer's chat template "
        "(default %(default)s)",
    )
    p.add_argument(
        "--epochs", type=float, default=d.epochs, help="training epochs (default %(default)s)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="sequences per optimizer step over all processes (default %(default)s)",
    )
    p.add_argument(
        "--micro-batch-size",
        type=int,
        default=d.micro_batch_size,
        help="sequences per forward pass per process; lower it if memory runs out "
        "(default %(default)s)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default 2e-5, or 2e-4 with --lora-r)",
    )
    p.add_argument("--lr-scheduler", default=d.lr_scheduler, help="(default %(default)s)")
    p.add_argument(
        "--warmup-ratio", type=float, default=d.warmup_ratio, help="(default %(default)s)"
    )
    p.add_argument(
        "--weight-decay", type=float, default=d.weight_decay, help="(default %(default)s)"
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=d.max_length,
        help="longest training sequence; longer ones are cut (default %(default)s)",
    )
    p.add_argument(
        "--lora-r", type=int, default=0, help="LoRA rank; 0 = full fine-tuning (default)"
    )
    p.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2 x r)")
    p.add_argument(
        "--lora-dropout", type=float, default=d.lora_dropout, help="(default %(default)s)"
    )
    p.add_argument(
        "--lora-targets",
        default=d.lora_targets,
        help="comma-separated module names, or all-linear (default)",
    )
    p.add_argument(
        "--merge-lora",
        action="store_true",
        help="also save the LoRA-merged full model in OUTPUT/merged",
    )
    p.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory")
    p.add_argument(
        "--dtype",
        choices=["auto", "bf16", "fp32"],
        default=d.dtype,
        help="auto: bf16 on a GPU that supports it, fp32 on CPU (default)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="(default %(default)s)")
    p.add_argument(
        "--max-steps",
        type=int,
        default=d.max_steps,
        help="stop after this many optimizer steps (default: all epochs)",
    )
    p.add_argument(
        "--save-steps",
        type=int,
        default=d.save_steps,
        help="checkpoint every N steps (default: every epoch)",
    )
    p.add_argument(
        "--save-total-limit",
        type=int,
        default=d.save_total_limit,
        help="checkpoints kept (default %(default)s)",
    )
    p.add_argument(
        "--logging-steps", type=int, default=d.logging_steps, help="(default %(default)s)"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CHECKPOINT",
        help="continue from the last checkpoint in --output-dir (or from CHECKPOINT)",
    )
    p.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="a malformed record stops the run (raise) or is skipped",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default=d.method,
        help="sft: supervised fine-tuning on records; grpo: RL on rows of mosaic-it "
        "make-rl-prompts with verifiable rewards (default %(default)s)",
    )
    r = p.add_argument_group("GRPO (--method grpo)")
    r.add_argument(
        "--num-generations",
        type=int,
        default=d.num_generations,
        help="completions per prompt; --batch-size counts completions and must be a "
        "multiple of it (default %(default)s)",
    )
    r.add_argument(
        "--max-completion-length",
        type=int,
        default=d.max_completion_length,
        help="longest completion in tokens (default %(default)s)",
    )
    r.add_argument(
        "--rewards",
        default=d.rewards,
        help="+-joined rewards: pass (1 when every constraint holds) and/or partial "
        "(share of answers in place) (default %(default)s)",
    )
    r.add_argument(
        "--reward-mode",
        choices=["strict", "loose"],
        default=d.reward_mode,
        help="how strictly the grader reads labels and tags (default %(default)s)",
    )
    r.add_argument(
        "--temperature",
        type=float,
        default=d.temperature,
        help="sampling temperature of the completions (default %(default)s)",
    )
    g = p.add_argument_group("on-the-fly mosaics")
    g.add_argument(
        "--mosaic-on-the-fly",
        action="store_true",
        help="DATA holds original records; every epoch trains on a fresh mosaic epoch",
    )
    g.add_argument("--mosaic-wrap-mode", default=None, help="as mosaic --wrap-mode")
    g.add_argument(
        "--mosaic-max-instructions", type=int, default=None, help="as mosaic --max-instructions"
    )
    g.add_argument("--mosaic-strategies", default=None, help="as mosaic --strategies")
    g.add_argument("--mosaic-rules", default=None, help="as mosaic --rules")
    return cmd_train


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    options: dict[str, Any] = {}
    if args.mosaic_wrap_mode:
        options["wrap_mode"] = args.mosaic_wrap_mode
    if args.mosaic_max_instructions:
        options["max_instructions"] = args.mosaic_max_instructions
    if args.mosaic_strategies:
        options["strategies"] = [
            s for s in args.mosaic_strategies.replace(",", "+").split("+") if s
        ]
    if args.mosaic_rules:
        options["rules"] = args.mosaic_rules
    if options and not args.mosaic_on_the_fly:
        raise ValueError("--mosaic-* options need --mosaic-on-the-fly")
    return TrainConfig(
        data=args.data,
        output_dir=args.output_dir,
        model=args.model,
        tokenizer=args.tokenizer,
        template=args.template,
        epochs=args.epochs,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        learning_rate=args.lr,
        lr_scheduler=args.lr_scheduler,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_length=args.max_length,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        lora_targets=args.lora_targets,
        gradient_checkpointing=args.gradient_checkpointing,
        dtype=args.dtype,
        seed=args.seed,
        max_steps=args.max_steps,
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps,
        mosaic_on_the_fly=args.mosaic_on_the_fly,
        mosaic_options=options or None,
        on_error=args.on_error,
        method=args.method,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        rewards=args.rewards,
        reward_mode=args.reward_mode,
        temperature=args.temperature,
    )


def cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    with guard(
        {"DATA": config.data, "--model": config.model, "--tokenizer": config.tokenizer},
        [Output(config.output_dir, "--output-dir", "dir", markers=(CONFIG_FILE,))],
        lock=_is_main(),
    ):  # one lock for all the processes of a multi-GPU run
        try:
            result = train(config, resume=args.resume)
        except KeyboardInterrupt:
            kept = sorted(p.name for p in Path(config.output_dir).glob("checkpoint-*"))
            raise RunInterrupted(
                f"interrupted; checkpoints kept in {config.output_dir}: "
                + (
                    f"{', '.join(kept)}; continue with --resume"
                    if kept
                    else "none (none had been saved yet); run again to start over"
                )
            ) from None
        if args.merge_lora and config.lora_r:
            merge_lora(config.output_dir)
    if _is_main():
        last = f", last logged loss {result.losses[-1][1]:.4f}" if result.losses else ""
        if result.rewards:
            last += (
                f", mean reward {result.rewards[0][1]:.3f} at step {result.rewards[0][0]} "
                f"-> {result.rewards[-1][1]:.3f} at step {result.rewards[-1][0]}"
            )
        print(
            f"mosaic-it train: {result.steps} steps over {result.rows} sequences in "
            f"{result.seconds:.1f} s{last}; saved to {result.output_dir}",
            file=sys.stderr,
        )
    return 0


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
