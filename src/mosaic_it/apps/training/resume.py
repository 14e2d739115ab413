"""Resuming a run: the checkpoint it continues from, and a check that it trains the same."""

from __future__ import annotations

import json
from pathlib import Path

from mosaic_it.apps.training.config import CONFIG_FILE, RESUME_KEYS, TrainConfig, saved_config
from mosaic_it.errors import OptionError
from mosaic_it.io.fingerprint import content_digest


def find_checkpoint(output_dir: str, resume: str | bool | None) -> str | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to clobber one."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if not resume:
        if last is not None:
            raise OptionError(
                f"{output_dir} already holds checkpoints ({Path(last).name}); pass --resume to "
                "continue that run, or choose another --output-dir"
            )
        return None
    if resume is True or resume == "last":
        if last is None:
            raise OptionError(
                f"--resume: no checkpoint-N directory in {output_dir}; run without --resume"
            )
        checkpoint = last
    else:
        checkpoint = str(resume)
        if not (Path(checkpoint) / "trainer_state.json").is_file():
            raise OptionError(
                f"--resume {checkpoint}: not a checkpoint directory (no trainer_state.json)"
            )
    return checkpoint


def check_resume_config(config: TrainConfig) -> None:
    """A resumed run must train what the first run trained."""
    saved_path = Path(config.output_dir) / CONFIG_FILE
    if not saved_path.is_file():
        return
    meta = json.loads(saved_path.read_text(encoding="utf-8"))
    saved, now = saved_config(meta.get("config", {})), config.to_dict()
    changed = [k for k in RESUME_KEYS if k in saved and saved[k] != now.get(k)]
    if meta.get("data_content", content_digest(config.data)) != content_digest(config.data):
        raise OptionError(
            f"--resume: {config.data} is not the data the run in {config.output_dir} trained on "
            f"(that was {saved.get('data')!r}, with other content); give the same data, or a "
            "new --output-dir"
        )
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {now.get(k)!r}" for k in changed)
        raise OptionError(
            f"--resume: options differ from the run in {config.output_dir} ({details}); use the "
            "same options, or a new --output-dir"
        )
