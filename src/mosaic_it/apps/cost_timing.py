"""Timing for ``mosaic-it cost``: ``mosaic-it train``'s own step measured on a real model at a
few sequence lengths, and every micro-batch of a regime priced by interpolation."""

from __future__ import annotations

import bisect
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mosaic_it.apps.cost_counting import Side


@dataclass
class Timing:
    model: str
    device: str
    micro_batch_size: int
    lengths: list[int]  # padded lengths measured
    seconds: list[float]  # fastest forward+backward of a full micro-batch at each length
    optimizer_step: float
    repeats: int
    load_average: float | None

    def micro_seconds(self, rows: int, length: int) -> float:
        """Interpolated (linear in length, proportional in rows) time of one micro-batch."""
        xs, ys = self.lengths, self.seconds
        if length <= xs[0]:
            t = ys[0] * length / xs[0]
        elif length >= xs[-1]:
            t = ys[-1] * length / xs[-1]
        else:
            j = bisect.bisect_left(xs, length)
            x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
            t = y0 + (y1 - y0) * (length - x0) / (x1 - x0)
        return t * rows / self.micro_batch_size


def measure(
    model_spec: str, micro: int, max_length: int, repeats: int = 3, points: int = 4
) -> Timing:
    """Time ``mosaic-it train``'s own step at ``points`` lengths up to ``max_length``.

    The trainer is the one ``mosaic-it train`` builds (TRL's SFTTrainer, same precision, loss on
    the completion, TRL's token metrics), and a micro-batch is its ``training_step`` (forward,
    loss, backward) on a batch from its own collator: random token ids (the time depends on the
    shape, not the text) with the first quarter of each sequence masked as a prompt. The
    optimizer step is the trainer's AdamW with gradient clipping, as ``Trainer`` runs it.
    """
    import tempfile

    from mosaic_it.apps.model_source import ModelError, require_torch

    try:
        torch = require_torch()
    except ModelError as exc:
        raise ModelError(f"{exc}; or pass --no-time for the counts alone") from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # a short length too, so that the fixed cost of a step shows in short batches' prices
    fractions = [1 / 16] + [(k + 1) / (points - 1) for k in range(points - 1)]
    lengths = sorted({max(8, int(max_length * f)) for f in fractions})
    with tempfile.TemporaryDirectory(prefix="mosaic-it-cost-") as tmp:
        timer = StepTimer(model_spec, micro, max_length, Path(tmp))
        try:
            timer.step(lengths[0])  # warm-up
            samples: dict[int, list[float]] = {n: [] for n in lengths}
            # interleaved, so load changes hit every length alike; the fastest of the repeats
            # is kept: on a shared machine other processes only ever add time
            for _ in range(repeats):
                for n in lengths:
                    samples[n].append(timer.step(n))
            opt_seconds = min([timer.optimizer_step() for _ in range(repeats)])
        except torch.OutOfMemoryError as exc:
            raise ModelError(
                f"out of memory measuring micro-batches of {micro} x {max_length} tokens on "
                f"{device} ({str(exc).splitlines()[0][:120]}); lower --micro-batch-size"
            ) from None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return Timing(
        model_spec,
        device,
        micro,
        lengths,
        [min(samples[n]) for n in lengths],
        opt_seconds,
        repeats,
        load,
    )


class StepTimer:
    """The trainer ``mosaic-it train`` builds for ``model_spec`` (on one placeholder record in
    ``tmp``), timing its training step on random micro-batches and its optimizer step."""

    def __init__(self, model_spec: str, micro: int, max_length: int, tmp: Path) -> None:
        from mosaic_it.apps.model_source import require_torch
        from mosaic_it.apps.training.config import TrainConfig
        from mosaic_it.apps.training.trainers import prepare_run

        torch = self.torch = require_torch()
        self.cuda = torch.cuda.is_available()
        self.micro = micro
        self.gen = torch.Generator().manual_seed(0)
        data = tmp / "one.jsonl"
        data.write_text(json.dumps({"instruction": "x", "output": "y"}) + "\n", encoding="utf-8")
        config = TrainConfig(
            data=str(data),
            output_dir=str(tmp / "out"),
            model=model_spec,
            batch_size=micro,
            micro_batch_size=micro,
            max_length=max_length,
        )
        trainer = self.trainer = prepare_run(config).trainer
        self.model = trainer.model
        self.model.train()
        trainer.create_optimizer()
        self.optimizer = trainer.optimizer
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop otherwise
        self.vocab = self.model.get_input_embeddings().num_embeddings

    def _sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def step(self, length: int) -> float:
        """Seconds of one training step (forward, loss, backward) on ``micro`` x ``length``."""
        torch, trainer = self.torch, self.trainer
        ids = torch.randint(0, self.vocab, (self.micro, length), generator=self.gen).tolist()
        cut = length // 4
        batch = trainer.data_collator(
            [{"input_ids": row, "labels": [-100] * cut + row[cut:]} for row in ids]
        )
        batch = trainer._prepare_inputs(batch)
        self._sync()
        t0 = time.perf_counter()
        trainer.training_step(self.model, batch, num_items_in_batch=None)
        self._sync()
        return time.perf_counter() - t0

    def optimizer_step(self) -> float:
        """Seconds of one optimizer step with gradient clipping, as ``Trainer`` runs it."""
        t0 = time.perf_counter()
        self.torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.trainer.args.max_grad_norm
        )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=False)
        self._sync()
        return time.perf_counter() - t0


def price(side: Side, timing: Timing) -> None:
    for regime in side.regimes.values():
        compute = sum(timing.micro_seconds(r, n) for r, n in regime.micro_shapes)
        regime.seconds = compute + regime.steps * timing.optimizer_step
