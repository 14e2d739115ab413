"""``mosaic-it train DATA --model M --output-dir OUT``: fine-tune a causal LM on original or
mosaic data (SFT), or with GRPO on mosaic prompts."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from mosaic_it.apps.model_source import TINY_LLAMA
from mosaic_it.apps.prompt_formats import PROMPT_FORMATS
from mosaic_it.apps.train import merge_lora, train
from mosaic_it.apps.training.config import CONFIG_FILE, METHODS, TrainConfig
from mosaic_it.apps.training.processes import is_main as _is_main
from mosaic_it.cli.registry import Arguments, Command, declare_prompt_format, say
from mosaic_it.errors import OptionError
from mosaic_it.io.outputs import Output, RunInterrupted, guard
from mosaic_it.signals import signal_of


def declare(a: Arguments) -> None:
    d = TrainConfig(data="", output_dir="", model="")
    _declare_data(a, d)
    _declare_schedule(a, d)
    _declare_method(a, d)
    _declare_on_the_fly(a)


def _declare_data(a: Arguments, d: TrainConfig) -> None:
    """Data, model and the optimizer's batch and learning rate."""
    a.add("data", help="Alpaca JSON/JSONL: original records, or the output of mosaic-it mosaic")
    a.add(
        "--model",
        required=True,
        help=f"model directory, .gguf file, Hub id, or {TINY_LLAMA} (a random tiny Llama)",
    )
    a.add("--output-dir", required=True, help="checkpoints, final model, tokenizer and config")
    a.add("--tokenizer", help="tokenizer directory or Hub id (default: the model's own)")
    declare_prompt_format(
        a,
        PROMPT_FORMATS,
        d.prompt_format,
        "how a record becomes a training sequence: vicuna: FastChat Vicuna v1.1; chat: "
        "the tokenizer's chat template",
    )
    a.add("--epochs", type=float, default=d.epochs, help="training epochs (default %(default)s)")
    a.add(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="sequences per optimizer step over all processes (default %(default)s)",
    )
    a.add(
        "--micro-batch-size",
        type=int,
        default=d.micro_batch_size,
        help="sequences per forward pass per process; lower it if memory runs out "
        "(default %(default)s)",
    )
    a.add(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default 2e-5, or 2e-4 with --lora-r)",
    )
    a.add("--lr-scheduler", default=d.lr_scheduler, help="(default %(default)s)")
    a.add("--warmup-ratio", type=float, default=d.warmup_ratio, help="(default %(default)s)")
    a.add("--weight-decay", type=float, default=d.weight_decay, help="(default %(default)s)")
    a.add(
        "--max-length",
        type=int,
        default=d.max_length,
        help="longest training sequence; longer ones are cut (default %(default)s)",
    )


def _declare_schedule(a: Arguments, d: TrainConfig) -> None:
    """LoRA, precision, steps and checkpoints."""
    a.add("--lora-r", type=int, default=0, help="LoRA rank; 0 = full fine-tuning (default)")
    a.add("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2 x r)")
    a.add("--lora-dropout", type=float, default=d.lora_dropout, help="(default %(default)s)")
    a.add(
        "--lora-targets",
        default=d.lora_targets,
        help="comma-separated module names, or all-linear (default)",
    )
    a.add(
        "--merge-lora",
        action="store_true",
        help="also save the LoRA-merged full model in OUTPUT/merged",
    )
    a.add("--gradient-checkpointing", action="store_true", help="trade compute for memory")
    a.add(
        "--dtype",
        choices=["auto", "bf16", "fp32"],
        default=d.dtype,
        help="auto: bf16 on a GPU that supports it, fp32 on CPU (default)",
    )
    a.add("--seed", type=int, default=d.seed, help="(default %(default)s)")
    a.add(
        "--threads",
        type=int,
        default=d.threads,
        help="torch threads on CPU (default 0: the usable cores not kept busy by other "
        "processes, by load average, as eval chooses them)",
    )
    a.add(
        "--max-steps",
        type=int,
        default=d.max_steps,
        help="stop after this many optimizer steps (default: all epochs)",
    )
    a.add(
        "--save-steps",
        type=int,
        default=d.save_steps,
        help="checkpoint every N steps (default: every epoch)",
    )
    a.add(
        "--save-total-limit",
        type=int,
        default=d.save_total_limit,
        help="checkpoints kept (default %(default)s)",
    )
    a.add("--logging-steps", type=int, default=d.logging_steps, help="(default %(default)s)")


def _declare_method(a: Arguments, d: TrainConfig) -> None:
    """Resuming, bad records, and SFT or GRPO."""
    a.add(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CHECKPOINT",
        help="continue from the last checkpoint in --output-dir (or from CHECKPOINT)",
    )
    a.add(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="a malformed record stops the run (raise) or is skipped",
    )
    a.add(
        "--method",
        choices=METHODS,
        default=d.method,
        help="sft: supervised fine-tuning on records; grpo: RL on rows of mosaic-it "
        "make-rl-prompts with verifiable rewards (default %(default)s)",
    )
    r = a.group("GRPO (--method grpo)")
    r.add(
        "--num-generations",
        type=int,
        default=d.num_generations,
        help="completions per prompt; --batch-size counts completions and must be a "
        "multiple of it (default %(default)s)",
    )
    r.add(
        "--max-completion-length",
        type=int,
        default=d.max_completion_length,
        help="longest completion in tokens (default %(default)s)",
    )
    r.add(
        "--rewards",
        default=d.rewards,
        help="+-joined rewards: pass (1 when every constraint holds) and/or partial "
        "(share of answers in place) (default %(default)s)",
    )
    r.add(
        "--reward-mode",
        choices=["strict", "loose"],
        default=d.reward_mode,
        help="how strictly the grader reads labels and tags (default %(default)s)",
    )
    r.add(
        "--temperature",
        type=float,
        default=d.temperature,
        help="sampling temperature of the completions (default %(default)s)",
    )


def _declare_on_the_fly(a: Arguments) -> None:
    g = a.group("on-the-fly mosaics")
    g.add(
        "--mosaic-on-the-fly",
        action="store_true",
        help="DATA holds original records; every epoch trains on a fresh mosaic epoch",
    )
    g.add("--mosaic-wrap-mode", default=None, help="as mosaic --wrap-mode")
    g.add("--mosaic-max-instructions", type=int, default=None, help="as mosaic --max-instructions")
    g.add("--mosaic-strategies", default=None, help="as mosaic --strategies")
    g.add("--mosaic-rules", default=None, help="as mosaic --rules")


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
        raise OptionError("--mosaic-* options need --mosaic-on-the-fly")
    return TrainConfig(
        data=args.data,
        output_dir=args.output_dir,
        model=args.model,
        tokenizer=args.tokenizer,
        prompt_format=args.prompt_format,
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
        threads=args.threads,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    with guard(
        {"DATA": config.data, "--model": config.model, "--tokenizer": config.tokenizer},
        [Output(config.output_dir, "--output-dir", "dir", markers=(CONFIG_FILE,))],
        lock=_is_main(),
    ):  # one lock for all the processes of a multi-GPU run
        try:
            result = train(config, resume=args.resume)
        except KeyboardInterrupt as exc:  # a signal (see mosaic_it.signals)
            kept = sorted(p.name for p in Path(config.output_dir).glob("checkpoint-*"))
            raise RunInterrupted(
                f"interrupted ({signal.Signals(signal_of(exc)).name}); checkpoints kept in "
                f"{config.output_dir}: "
                + (
                    f"{', '.join(kept)}; continue with --resume"
                    if kept
                    else "none (none had been saved yet, nothing for --resume); run again to "
                    "start over"
                ),
                signal_of(exc),
            ) from None
        if args.merge_lora and config.lora_r:
            merge_lora(config.output_dir)
    if _is_main():
        last = f", last logged loss {result.losses[-1][1]:.4f}" if result.losses else ""
        if result.rewards:
            (s0, first), (s1, final) = result.rewards[0], result.rewards[-1]
            last += "; mean rewards, step {} -> {}: {}".format(
                s0,
                s1,
                ", ".join(
                    f"{name} {first[name]:.3f} -> {final.get(name, float('nan')):.3f}"
                    for name in first
                ),
            )
        say(
            args,
            f"{result.steps} steps over {result.rows} sequences in "
            f"{result.seconds:.1f} s{last}; saved to {result.output_dir}",
        )
    return 0


COMMAND = Command(
    "train",
    "fine-tune a causal LM on original or mosaic data (needs mosaic-it[train])",
    declare,
    run,
    description="Supervised fine-tuning with TRL: loss on the response tokens and EOS only. "
    "Multi-GPU: accelerate launch -m mosaic_it.cli train ...",
)
