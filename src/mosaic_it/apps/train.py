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

import json
import logging
import time
from pathlib import Path
from typing import Any

from mosaic_it.apps.generation import idle_cores
from mosaic_it.apps.model_source import ModelError, require_torch
from mosaic_it.apps.training.callbacks import TiedWeightsNote
from mosaic_it.apps.training.config import (
    CONFIG_FILE,
    TrainConfig,
    TrainResult,
)
from mosaic_it.apps.training.processes import is_main as _is_main
from mosaic_it.apps.training.trainers import prepare_run
from mosaic_it.io.atomic import atomic_bytes
from mosaic_it.io.fingerprint import content_digest
from mosaic_it.io.jsonfiles import write_json

NOTES = logging.getLogger(__name__)  # on stderr at the command line, as -q/-v say

__all__ = ["merge_lora", "out_of_memory_message", "train"]


def train(
    config: TrainConfig, resume: str | bool | None = None, callbacks: tuple[Any, ...] = ()
) -> TrainResult:
    """Train and save model, tokenizer and config in ``config.output_dir``."""
    torch = require_torch()
    if not torch.cuda.is_available():
        threads = config.threads or idle_cores()
        torch.set_num_threads(threads)
        if _is_main():
            how = "--threads" if config.threads else "the usable cores not kept busy (load average)"
            NOTES.info(f"mosaic-it train: {threads} torch thread(s) on CPU ({how})")
    run = prepare_run(config, resume, callbacks)
    out = Path(config.output_dir)
    if run.checkpoint and _is_main():
        note = _changed_steps_note(out / CONFIG_FILE, config.max_steps)
        if note:
            NOTES.info(f"mosaic-it train: {note}")
    meta: dict[str, Any] = {
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
    rewards = reward_curve(state.log_history)
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


def _changed_steps_note(saved: Path, max_steps: int) -> str | None:
    """What a resumed run with another --max-steps does to the learning rate: the optimizer
    comes back with the rate the checkpoint's schedule had reached, so the first resumed step
    runs at it (0 where a decay had ended), and the schedule goes on as one of the new length."""
    try:
        before = json.loads(saved.read_text(encoding="utf-8"))["config"].get("max_steps")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if before is None or before == max_steps:
        return None
    return (
        f"--max-steps changed from {before} to {max_steps} on --resume: the first resumed step "
        "runs at the learning rate the checkpoint's schedule had reached (0 at the end of a "
        f"decay), the later ones on a schedule of {max_steps} steps"
    )


def reward_curve(log_history: list[dict[str, Any]]) -> list[tuple[int, dict[str, float]]]:
    """(step, mean of each reward kind) for every logged GRPO step: TRL logs each reward
    function's mean as ``rewards/NAME/mean`` (its "reward" is their sum, not shown)."""
    curve = []
    for h in log_history:
        means = {
            key[len("rewards/") : -len("/mean")]: float(value)
            for key, value in h.items()
            if key.startswith("rewards/") and key.endswith("/mean")
        }
        if means:
            curve.append((int(h["step"]), means))
    return curve


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
    from mosaic_it.apps.model_source import ModelSource
    from mosaic_it.apps.models import load_model as _load

    model = _load(ModelSource(output_dir, "adapter", Path(output_dir)))
    merged = model.merge_and_unload()
    target = Path(output_dir) / "merged"
    merged.save_pretrained(str(target))
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(output_dir).save_pretrained(str(target))
    # so that mosaic-it eval prompts the merged model the way it was trained
    atomic_bytes(target / CONFIG_FILE, (Path(output_dir) / CONFIG_FILE).read_bytes())
    return target
