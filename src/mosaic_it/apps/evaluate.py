"""Generate answers to an evaluation set and score them: ``mosaic-it eval``.

``mosaic-it eval --model M --eval-set EVAL`` prompts the model with every item of an evaluation
set made by ``mosaic-it make-eval``, generates with transformers (batched, greedy unless
``--sample``), verifies every answer against the item's spec (:mod:`mosaic_it.apps.score`) and
prints the table; ``--out`` writes it as JSON, ``--responses`` keeps the answers (JSONL of id and
response, written as they come, so ``--resume`` continues an interrupted run).

Prompting follows the model: ``--prompt-format auto`` uses the format a model trained by
``mosaic-it train`` was trained with (its ``mosaic_it_train.json``), else the tokenizer's own chat
template, else Vicuna v1.1.

Backends (``--backend``): ``transformers`` (the default) loads the model here and generates in
batches of similar prompt length under ``torch.inference_mode`` with the KV cache;
``openai`` asks any OpenAI-compatible server (``--base-url URL --model NAME``: vLLM, SGLang,
llama.cpp, TGI, ``transformers serve``) with bounded concurrency, timeouts and retries (see
:mod:`mosaic_it.apps.backends`); ``vllm`` runs vLLM's offline engine here where vLLM is installed;
``llamacpp`` runs a ``.gguf`` file with llama.cpp here, on the CPU (:mod:`mosaic_it.apps.llamacpp`).
Every backend writes answers as they come and is scored the same way.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mosaic_it.apps.backends import (
    GenerationBackend,
    OpenAIBackend,
    ServedOptions,
    VLLMBackend,
)
from mosaic_it.apps.generation import (
    GenerationOptions,
    Prompt,
    TransformersBackend,
)
from mosaic_it.apps.llamacpp import LlamaCppBackend
from mosaic_it.apps.model_source import ModelError
from mosaic_it.apps.score import read_eval, score
from mosaic_it.apps.score_report import EvalItem, ScoreReport
from mosaic_it.errors import InputError, OptionError
from mosaic_it.io.fingerprint import content_digest
from mosaic_it.io.jsonfiles import write_json
from mosaic_it.io.nofollow import append_text
from mosaic_it.io.outputs import RunInterrupted
from mosaic_it.io.readers import iter_raw
from mosaic_it.signals import signal_of

__all__ = [
    "BACKENDS",
    "check_responses_run",
    "evaluate",
    "read_done",
    "read_eval_set",
    "responses_run_path",
]

LISTED = 5
BACKENDS = ("transformers", "openai", "vllm", "llamacpp")


def read_eval_set(path: str) -> tuple[list[EvalItem], list[Prompt]]:
    """Items with usable specs and their prompts; anything else stops with what to change."""
    items, invalid = read_eval(path)
    if invalid:
        shown = "; ".join(f"{b['where']}: {b['error']}" for b in invalid[:LISTED])
        raise InputError(
            f"{path}: {len(invalid)} of {len(items) + len(invalid)} evaluation items have no "
            "usable "
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
            raise InputError(
                f"{item.where}: field 'prompt': missing; mosaic-it make-eval writes it"
            )
        prompts.append(Prompt(item.id, item.prompt, systems.get(item.id, "")))
    return items, prompts


def responses_run_path(responses: str | Path) -> Path:
    """The side file that records which run wrote a responses file: ``RESPONSES.run.json``."""
    return Path(str(responses) + ".run.json")


def check_responses_run(path: Path, run: dict[str, Any], resume: bool) -> None:
    """``--resume`` adds answers only to a file the same run wrote: same model, eval set
    content, prompt format and generation options (the side file records them)."""
    if not (resume and path.exists()):
        return
    side = responses_run_path(path)
    try:
        saved = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(
            f"--resume: {path} has no readable {side.name} saying which model, evaluation set "
            "and options wrote it; its answers cannot be trusted to match: write to another "
            "file, or remove it to start over"
        ) from None
    changed = [
        f"{k}: {saved.get(k)!r} then, {v!r} now" for k, v in run.items() if saved.get(k) != v
    ]
    if changed:
        raise InputError(
            f"--resume: {path} holds answers of another run ({'; '.join(changed)}); write to "
            "another file, or run with the options it was made with"
        )


def read_done(path: Path) -> dict[str, str]:
    done: dict[str, str] = {}
    if path.is_file():
        for _, _, obj in iter_raw(path):
            if isinstance(obj, dict) and "id" in obj and isinstance(obj.get("response"), str):
                done[str(obj["id"])] = obj["response"]
    return done


def evaluate(
    model_spec: str,
    eval_set: str,
    *,
    tokenizer: str | None = None,
    prompt_format: str = "auto",
    opt: GenerationOptions | None = None,
    mode: str = "loose",
    responses_path: str | None = None,
    resume: bool = False,
    dtype: str = "auto",
    backend: str = "transformers",
    served: ServedOptions | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[ScoreReport, dict[str, Any]]:
    """Generate with ``backend``, score, and return the report with what was run.

    (Over 60 lines: a dozen of them are its keyword options; the steps are make_backend,
    responses_run, the backend's answer and score.)

    ``model_spec`` is the model (transformers, vllm) or the served model's name (openai, with
    ``served`` saying where and how to ask)."""
    opt = opt or GenerationOptions()
    if backend not in BACKENDS:
        raise OptionError(f"--backend: choose from {', '.join(BACKENDS)}, got {backend!r}")
    items, prompts = read_eval_set(eval_set)  # before loading anything heavy
    responses_file = Path(responses_path) if responses_path else None
    if responses_file is not None and responses_file.exists() and not resume:
        raise OptionError(
            f"{responses_path} exists; pass --resume to keep its answers and "
            "add the missing ones, or remove it"
        )
    engine, load_seconds = make_backend(
        backend, model_spec, tokenizer, prompt_format, dtype, served
    )
    run_info = responses_run(model_spec, eval_set, engine.describe(), opt)
    responses: dict[str, str] = {}
    out_file: IO[str] | None = None
    if responses_file is not None:
        check_responses_run(responses_file, run_info, resume)
        responses = read_done(responses_file) if resume else {}
        responses_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(responses_run_path(responses_file), run_info)
        out_file = open(append_text(responses_file), "a", encoding="utf-8")
    todo = [p for p in prompts if p.id not in responses]

    def on_answer(key: str, text: str) -> None:
        responses[key] = text
        if out_file is not None:
            out_file.write(json.dumps({"id": key, "response": text}, ensure_ascii=False) + "\n")
            out_file.flush()

    t1 = time.perf_counter()
    try:
        counts = engine.answer(todo, opt, on_answer, log)
    except (ModelError, KeyboardInterrupt) as exc:  # a server that failed for good, memory,
        # a signal (see mosaic_it.signals): say what is kept and how to go on
        kept = _kept_answers(responses_file, len(responses))
        if isinstance(exc, KeyboardInterrupt):
            name = signal.Signals(signal_of(exc)).name
            raise RunInterrupted(f"interrupted ({name}); {kept}", signal_of(exc)) from None
        raise type(exc)(f"{exc}; {kept}") from None
    finally:
        if out_file is not None:
            out_file.close()
    seconds = time.perf_counter() - t1
    report = score(items, responses, mode=mode)
    tokens = counts.get("tokens_generated")
    meta = {
        "model": model_spec,
        "eval_set": eval_set,
        **engine.describe(),
        "generation": {
            **opt.__dict__,
            **counts,
            "resumed_answers": len(prompts) - len(todo),
            "tokens_per_second": round(tokens / seconds, 2) if tokens and seconds > 0 else None,
        },
        "seconds": {  # llama.cpp loads its model when it knows the context it needs
            "load": round(getattr(engine, "load_seconds", load_seconds), 1),
            "generate": round(seconds, 1),
        },
    }
    return report, meta


def _kept_answers(responses_file: Path | None, answers: int) -> str:
    """What a run that stopped early leaves for ``--resume``, in words."""
    if responses_file is None:
        return (
            f"the {answers} answer(s) received were not kept: give --responses FILE to keep "
            "answers as they come and --resume to ask only the rest"
        )
    return (
        f"the {answers} answers so far are kept in {responses_file}: run the same command "
        "with --resume to continue"
    )


def make_backend(
    backend: str,
    model_spec: str,
    tokenizer: str | None,
    prompt_format: str,
    dtype: str,
    served: ServedOptions | None,
) -> tuple[GenerationBackend, float]:
    """The generation backend, loaded, and the seconds loading its model took."""
    if backend == "openai":
        if served is None:
            raise OptionError("--backend openai needs --base-url")
        return OpenAIBackend(served), 0.0
    engine: VLLMBackend | TransformersBackend | LlamaCppBackend
    if backend == "llamacpp":
        engine = LlamaCppBackend(model_spec, tokenizer, prompt_format)
    elif backend == "vllm":
        engine = VLLMBackend(model_spec, dtype, tokenizer)
    else:
        engine = TransformersBackend(model_spec, tokenizer, prompt_format, dtype)
    return engine, engine.load_seconds


def responses_run(
    model_spec: str, eval_set: str, described: dict[str, Any], opt: GenerationOptions
) -> dict[str, Any]:
    """What must match for --resume to add answers to a responses file: same model, eval set
    content, backend, prompt format and generation options (not the address a server listens
    on)."""
    return {
        "model": os.path.realpath(model_spec) if Path(model_spec).exists() else model_spec,
        "eval_set": content_digest(eval_set),
        **{k: described[k] for k in ("backend", "prompt_format", "served_model") if k in described},
        "generation": {
            k: v
            for k, v in opt.__dict__.items()
            if k not in ("batch_size", "threads", "batch_tokens")
        },
    }
