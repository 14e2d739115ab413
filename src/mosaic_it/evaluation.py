"""Generate answers to an evaluation set and score them: ``mosaic-it eval``.

``mosaic-it eval --model M --eval-set EVAL`` prompts the model with every item of an evaluation
set made by ``mosaic-it make-eval``, generates with transformers (batched, greedy unless
``--sample``), verifies every answer against the item's spec (:mod:`mosaic_it.score`) and
prints the table; ``--out`` writes it as JSON, ``--responses`` keeps the answers (JSONL of id and
response, written as they come, so ``--resume`` continues an interrupted run).

Prompting follows the model: ``--template auto`` uses the format a model trained by
``mosaic-it train`` was trained with (its ``mosaic_it_train.json``), else the tokenizer's own chat
template, else Vicuna v1.1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io import InputError, iter_raw, write_json
from .models import (
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
from .score import EvalItem, ScoreReport, plot, read_eval, score

LISTED = 5


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 512
    batch_size: int = 8
    sample: bool = False  # greedy by default
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("--max-new-tokens and --batch-size must be at least 1")


@dataclass
class Prompt:
    id: str
    instruction: str
    system: str


def read_eval_set(path: str) -> tuple[list[EvalItem], list[Prompt]]:
    """Items with usable specs and their prompts; anything else stops with what to change."""
    items, invalid = read_eval(path)
    if invalid:
        shown = "; ".join(f"{b['where']}: {b['error']}" for b in invalid[:LISTED])
        raise InputError(
            f"{path}: {len(invalid)} of {len(items) + len(invalid)} evaluation items have no usable "
            f"spec ({shown}). An evaluation set needs a 'mosaic' spec per line: make one with "
            "mosaic-it make-eval"
        )
    if not items:
        raise InputError(f"{path}: no evaluation items; make some with mosaic-it make-eval")
    systems = {}
    for _, _, obj in iter_raw(path):
        if isinstance(obj, dict) and isinstance(obj.get("system"), str):
            systems[str(obj["id"])] = obj["system"]
    prompts = []
    for item in items:
        if not item.prompt:
            raise InputError(f"{item.where}: field 'prompt': missing; mosaic-it make-eval writes it")
        prompts.append(Prompt(item.id, item.prompt, systems.get(item.id, "")))
    return items, prompts


def choose_format(name: str, model_spec: str, tokenizer: Any) -> PromptFormat:
    """``auto``: the training run's format, else the tokenizer's chat template, else Vicuna."""
    if name != "auto":
        return prompt_format(name, tokenizer)
    saved = Path(model_spec) / "mosaic_it_train.json"
    if saved.is_file():
        try:
            trained = json.loads(saved.read_text(encoding="utf-8"))["config"]["template"]
            return prompt_format(trained, tokenizer)
        except (ValueError, KeyError, TypeError):
            pass
    return PromptFormat("chat" if getattr(tokenizer, "chat_template", None) else "vicuna")


def read_done(path: Path) -> dict[str, str]:
    done: dict[str, str] = {}
    if path.is_file():
        for _, _, obj in iter_raw(path):
            if isinstance(obj, dict) and "id" in obj and isinstance(obj.get("response"), str):
                done[str(obj["id"])] = obj["response"]
    return done


def generate(model: Any, tokenizer: Any, fmt: PromptFormat, prompts: list[Prompt],
             opt: GenerationOptions, on_answer: Callable[[str, str], None],
             log: Callable[[str], None] = lambda s: None) -> dict[str, int]:
    """Answer every prompt in batches of similar length; ``on_answer(id, text)`` per answer."""
    torch = require_torch()
    device = next(model.parameters()).device
    encoded = [(p, fmt.generation_ids(tokenizer, p.instruction, p.system)) for p in prompts]
    encoded.sort(key=lambda e: len(e[1]))  # similar lengths together: less padding
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = _stop_ids(model, tokenizer)
    generated = 0
    torch.manual_seed(opt.seed)
    for start in range(0, len(encoded), opt.batch_size):
        batch = encoded[start : start + opt.batch_size]
        width = max(len(ids) for _, ids in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids in batch], device=device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids in batch],
                            device=device)
        kwargs: dict[str, Any] = {"do_sample": opt.sample}
        if opt.sample:
            kwargs.update(temperature=opt.temperature, top_p=opt.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                out = model.generate(input_ids=input_ids, attention_mask=mask,
                                     max_new_tokens=opt.max_new_tokens, eos_token_id=stop,
                                     pad_token_id=pad, **kwargs)
        except torch.OutOfMemoryError as exc:
            raise ModelError(
                f"out of memory generating {len(batch)} answers of up to {opt.max_new_tokens} "
                f"tokens after {width}-token prompts ({str(exc).splitlines()[0][:120]}); lower "
                "--batch-size or --max-new-tokens"
            ) from None
        new = out[:, width:]
        for (p, _), ids in zip(batch, new.tolist()):
            ids = _until_stop(ids, stop, pad)
            generated += len(ids)
            on_answer(p.id, tokenizer.decode(ids, skip_special_tokens=True).strip())
        log(f"{min(start + opt.batch_size, len(encoded))}/{len(encoded)} answered "
            f"({time.perf_counter() - t0:.1f} s for this batch)")
    return {"answers": len(encoded), "tokens_generated": generated}


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


def evaluate(model_spec: str, eval_set: str, *, tokenizer: str | None = None,
             template: str = "auto", opt: GenerationOptions | None = None, mode: str = "loose",
             responses_path: str | None = None, resume: bool = False, dtype: str = "auto",
             log: Callable[[str], None] = lambda s: None) -> tuple[ScoreReport, dict[str, Any]]:
    """Generate, score, and return the report with what was run."""
    opt = opt or GenerationOptions()
    items, prompts = read_eval_set(eval_set)  # before loading anything heavy
    torch = require_torch()
    source = resolve_model(model_spec)
    tok = load_tokenizer_for(source, tokenizer)
    fmt = choose_format(template, model_spec, tok)
    cuda = torch.cuda.is_available()
    use_bf16 = dtype == "bf16" or (dtype == "auto" and cuda and torch.cuda.is_bf16_supported())
    t0 = time.perf_counter()
    model = load_model(source, dtype=torch.bfloat16 if use_bf16 else torch.float32)
    check_vocab(model, tok, model_spec)
    if cuda:
        model = model.to("cuda")
    model.eval()
    load_seconds = time.perf_counter() - t0

    responses: dict[str, str] = {}
    out_file = None
    if responses_path:
        path = Path(responses_path)
        if path.exists() and not resume:
            raise ValueError(f"{responses_path} exists; pass --resume to keep its answers and "
                             "add the missing ones, or remove it")
        responses = read_done(path) if resume else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        out_file = path.open("a", encoding="utf-8")
    todo = [p for p in prompts if p.id not in responses]

    def on_answer(key: str, text: str) -> None:
        responses[key] = text
        if out_file is not None:
            out_file.write(json.dumps({"id": key, "response": text}, ensure_ascii=False) + "\n")
            out_file.flush()

    t1 = time.perf_counter()
    try:
        counts = generate(model, tok, fmt, todo, opt, on_answer, log)
    finally:
        if out_file is not None:
            out_file.close()
    report = score(items, responses, mode=mode)
    meta = {
        "model": model_spec,
        "eval_set": eval_set,
        "prompt_format": fmt.name,
        "generation": {**opt.__dict__, **counts, "resumed_answers": len(prompts) - len(todo)},
        "device": "cuda" if cuda else "cpu",
        "dtype": "bf16" if use_bf16 else "fp32",
        "seconds": {"load": round(load_seconds, 1), "generate": round(time.perf_counter() - t1, 1)},
    }
    return report, meta


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def add_parser(sub: Any) -> Callable[[argparse.Namespace], int]:
    d = GenerationOptions()
    p = sub.add_parser(
        "eval",
        help="generate answers to an evaluation set with a model and score them",
        description="Prompt a model with every item of an evaluation set (mosaic-it make-eval), "
        "generate with transformers and verify every answer against its spec.",
    )
    p.add_argument("--model", required=True,
                   help="model directory (e.g. a mosaic-it train output), .gguf file or Hub id")
    p.add_argument("--eval-set", required=True, help="JSONL from mosaic-it make-eval")
    p.add_argument("--tokenizer", help="tokenizer directory or Hub id (default: the model's own)")
    p.add_argument("--template", choices=("auto", *PROMPT_FORMATS), default="auto",
                   help="auto: the format the model was trained with by mosaic-it train, else "
                   "the tokenizer's chat template, else vicuna (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens,
                   help="longest answer (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="prompts generated together (default %(default)s)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=d.temperature, help="with --sample")
    p.add_argument("--top-p", type=float, default=d.top_p, help="with --sample")
    p.add_argument("--seed", type=int, default=d.seed, help="with --sample")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 on a GPU that has it, fp32 otherwise")
    p.add_argument("--mode", choices=["strict", "loose"], default="loose",
                   help="how strictly labels and tags are checked (see mosaic-it score; "
                   "default %(default)s)")
    p.add_argument("--responses", metavar="FILE", help="write the answers here (JSONL)")
    p.add_argument("--resume", action="store_true",
                   help="keep the answers already in --responses and generate the rest")
    p.add_argument("--out", metavar="FILE", help="write the score table as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="accuracy against instruction count")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return cmd_eval


def cmd_eval(args: argparse.Namespace) -> int:
    if args.resume and not args.responses:
        raise ValueError("--resume needs --responses FILE (the answers to keep)")
    opt = GenerationOptions(args.max_new_tokens, args.batch_size, args.sample, args.temperature,
                            args.top_p, args.seed)

    def log(text: str) -> None:
        if not args.quiet:
            print(f"mosaic-it eval: {text}", file=sys.stderr, flush=True)

    report, meta = evaluate(args.model, args.eval_set, tokenizer=args.tokenizer,
                            template=args.template, opt=opt, mode=args.mode,
                            responses_path=args.responses, resume=args.resume, dtype=args.dtype,
                            log=log)
    print(f"model {meta['model']} ({meta['prompt_format']} prompts, "
          f"{'sampled' if opt.sample else 'greedy'}, up to {opt.max_new_tokens} new tokens)")
    print(report.render())
    if args.out:
        write_json(args.out, {**report.to_dict(), "run": meta})
    if args.plot:
        plot(report, args.plot)
    return 0
