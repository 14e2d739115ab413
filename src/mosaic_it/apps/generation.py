"""Generating answers with transformers in this process: ``mosaic-it eval --backend
transformers``, batched by prompt length under ``torch.inference_mode`` with the KV cache."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosaic_it.apps.backends import PromptLike
from mosaic_it.apps.model_source import ModelError, require_torch, resolve_model
from mosaic_it.apps.models import check_vocab, load_model, load_tokenizer_for, use_bf16
from mosaic_it.apps.prompt_formats import PromptFormat, prompt_format
from mosaic_it.apps.training.config import CONFIG_FILE, saved_config
from mosaic_it.engine.processes import usable_cpus
from mosaic_it.limits import MAX_TEMPERATURE, bound

MAX_BATCH = 64  # prompts in one batch when batches are sized by tokens
BUCKET_RATIO = 1.5  # ... and whose longest prompt is at most this times its shortest


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 512
    batch_size: int = 0  # 0: as many prompts as fit in batch_tokens (at most MAX_BATCH)
    sample: bool = False  # greedy by default
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    threads: int = 0  # transformers on CPU: torch threads (0: the idle cores, see idle_cores)
    batch_tokens: int = 16384  # with batch_size 0: prompts x (longest prompt + max_new_tokens)

    def __post_init__(self) -> None:
        bound("--max-new-tokens", self.max_new_tokens, at_least=1, whole=True)
        bound("--batch-size", self.batch_size, at_least=0, whole=True, why="0: by --batch-tokens")
        bound("--batch-tokens", self.batch_tokens, at_least=1, whole=True)
        bound("--threads", self.threads, at_least=0, whole=True, why="0: one per idle core")
        if self.sample:
            bound(
                "--temperature",
                self.temperature,
                above=0,
                at_most=MAX_TEMPERATURE,
                why="with --sample, the logits are divided by it",
            )
            bound("--top-p", self.top_p, above=0, at_most=1, why="a share of the probability mass")
        bound("--seed", self.seed, whole=True)


@dataclass
class Prompt:
    id: str
    instruction: str
    system: str


def choose_format(name: str, model_spec: str, tokenizer: Any) -> PromptFormat:
    """``auto``: the training run's format, else the tokenizer's chat template, else Vicuna."""
    if name != "auto":
        return prompt_format(name, tokenizer)
    saved = Path(model_spec) / CONFIG_FILE
    if saved.is_file():
        try:
            config = saved_config(json.loads(saved.read_text(encoding="utf-8"))["config"])
            return prompt_format(config["prompt_format"], tokenizer)
        except (ValueError, KeyError, TypeError):
            pass
    return PromptFormat("chat" if getattr(tokenizer, "chat_template", None) else "vicuna")


def generate(
    model: Any,
    tokenizer: Any,
    fmt: PromptFormat,
    prompts: Sequence[PromptLike],
    opt: GenerationOptions,
    on_answer: Callable[[str, str], None],
    log: Callable[[str], None] = lambda s: None,
    on_tokens: Callable[[str, int], None] | None = None,
) -> dict[str, int | None]:
    """Answer every prompt in batches of similar length; ``on_answer(id, text)`` per answer,
    and ``on_tokens(id, n)`` (before it) with the answer's new tokens up to its first stop: n
    equal to ``max_new_tokens`` means the answer reached the cap."""
    torch = require_torch()
    device = next(model.parameters()).device
    threads = None
    if device.type == "cpu":
        threads = opt.threads or idle_cores()
        torch.set_num_threads(threads)
    encoded = [
        (p, fmt.generation_ids(tokenizer, p.instruction, p.system, getattr(p, "history", ())))
        for p in prompts
    ]
    encoded.sort(key=lambda e: len(e[1]))  # similar lengths together: less padding
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = _stop_ids(model, tokenizer)
    generated = 0
    torch.manual_seed(opt.seed)
    done = 0
    for batch in prompt_batches(encoded, opt):
        t0 = time.perf_counter()
        answers = _generate_batch(model, [ids for _, ids in batch], opt, pad, stop)
        for (p, _), ids in zip(batch, answers):
            generated += len(ids)
            if on_tokens is not None:
                on_tokens(p.id, len(ids))
            on_answer(p.id, tokenizer.decode(ids, skip_special_tokens=True).strip())
        done += len(batch)
        log(f"{done}/{len(encoded)} answered ({time.perf_counter() - t0:.1f} s for this batch)")
    return {"answers": len(encoded), "tokens_generated": generated, "threads": threads}


def _generate_batch(
    model: Any, prompts: list[list[int]], opt: GenerationOptions, pad: int, stop: list[int]
) -> list[list[int]]:
    """The new token ids of one batch of prompts (left-padded), each cut at its first stop."""
    torch = require_torch()
    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompts)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=device)
    mask = torch.tensor(
        [[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device
    )
    kwargs: dict[str, Any] = {"do_sample": opt.sample}
    if opt.sample:
        kwargs.update(temperature=opt.temperature, top_p=opt.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    try:
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=opt.max_new_tokens,
                eos_token_id=stop,
                pad_token_id=pad,
                use_cache=True,
                **kwargs,
            )
    except torch.OutOfMemoryError as exc:
        raise ModelError(
            f"out of memory generating {len(prompts)} answers of up to {opt.max_new_tokens} "
            f"tokens after {width}-token prompts ({str(exc).splitlines()[0][:120]}); lower "
            "--batch-tokens (or set a small --batch-size) or --max-new-tokens"
        ) from None
    return [_until_stop(ids, stop, pad) for ids in out[:, width:].tolist()]


def idle_cores() -> int:
    """Cores this process may use that other processes do not keep busy (by the 1-minute load
    average), at least 1. On a shared CPU, threads beyond the idle cores wait for each other at
    every operation: on 2 cores under a load average of about 20, one thread generated 5.4
    times as many tokens per second as torch's default two (``benchmarks/eval_throughput.py``,
    figures in README)."""

    cores = usable_cpus()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, round(cores - busy)))


def prompt_batches(
    encoded: list[tuple[PromptLike, list[int]]], opt: GenerationOptions
) -> list[list[tuple[PromptLike, list[int]]]]:
    """Consecutive batches of the length-sorted prompts: ``batch_size`` each, or (0) as many as
    keep prompts x (longest prompt + max_new_tokens) within ``batch_tokens``, from one length
    bucket (the longest prompt at most ``BUCKET_RATIO`` times the shortest).

    A decoding step reads every weight once whatever the batch, so on a CPU (memory-bound) the
    tokens per second of decoding grow with the batch; the token budget keeps the KV cache
    bounded, and the buckets keep the padding of the prompts (computed for nothing) small.
    """
    if opt.batch_size:
        return [encoded[i : i + opt.batch_size] for i in range(0, len(encoded), opt.batch_size)]
    out: list[list[tuple[PromptLike, list[int]]]] = []
    current: list[tuple[PromptLike, list[int]]] = []
    for item in encoded:  # sorted by length: the newest prompt is the longest
        cost = (len(current) + 1) * (len(item[1]) + opt.max_new_tokens)
        if current and (
            cost > opt.batch_tokens
            or len(current) == MAX_BATCH
            or len(item[1]) > BUCKET_RATIO * len(current[0][1])
        ):
            out.append(current)
            current = []
        current.append(item)
    if current:
        out.append(current)
    return out


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return sorted(i for i in ids if i is not None)


def _until_stop(ids: list[int], stop: list[int], pad: int) -> list[int]:
    for j, t in enumerate(ids):
        if t in stop:
            return ids[:j]
    return ids


class TransformersBackend:
    """The model loaded here, generating with transformers (see :func:`generate`)."""

    name = "transformers"

    def __init__(
        self,
        model_spec: str,
        tokenizer: str | None = None,
        prompt_format: str = "auto",
        dtype: str = "auto",
    ) -> None:
        torch = require_torch()
        source = resolve_model(model_spec)
        self.tokenizer = load_tokenizer_for(source, tokenizer)
        self.fmt = choose_format(prompt_format, model_spec, self.tokenizer)
        self.cuda = torch.cuda.is_available()
        self.bf16 = use_bf16(dtype, torch)
        t0 = time.perf_counter()
        model = load_model(source, dtype=torch.bfloat16 if self.bf16 else torch.float32)
        check_vocab(model, self.tokenizer, model_spec)
        if self.cuda:
            model = model.to("cuda")
        self.model = model.eval()
        self.load_seconds = time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "prompt_format": self.fmt.name,
            "device": "cuda" if self.cuda else "cpu",
            "dtype": "bf16" if self.bf16 else "fp32",
        }

    def answer(
        self,
        prompts: Sequence[PromptLike],
        opt: GenerationOptions,
        on_answer: Callable[[str, str], None],
        log: Callable[[str], None] = lambda s: None,
    ) -> dict[str, Any]:
        return generate(self.model, self.tokenizer, self.fmt, prompts, opt, on_answer, log)
