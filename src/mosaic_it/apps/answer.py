"""Answers of a model to an open-ended prompt set, for ``mosaic-it judge``: ``mosaic-it answer``.

The model is asked through an OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI,
``transformers serve``) with the served backend of ``eval`` (concurrency, timeouts, retries), or
loaded here with its transformers backend (batched, the model's prompt format). Every first
turn is asked first; a second turn (MT-Bench) is then asked with the first turn and the model's
own answer to it in the conversation, and so on. Answers are written as they come, as
``{"id", "response"}`` lines (the id ``ID#2`` for a second turn), and ``resume`` asks only for
the missing ones, for the same model, prompt set and options (``RESPONSES.run.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosaic_it.apps.backends import GenerationBackend, OpenAIBackend, ServedOptions
from mosaic_it.apps.evaluate import check_responses_run, read_done, responses_run_path
from mosaic_it.apps.generation import GenerationOptions, TransformersBackend
from mosaic_it.apps.llamacpp import LlamaCppBackend
from mosaic_it.apps.prompt_formats import chat_messages
from mosaic_it.apps.prompt_sets import PromptItem, turn_id
from mosaic_it.errors import OptionError
from mosaic_it.io.jsonfiles import write_json
from mosaic_it.io.nofollow import append_text

__all__ = ["ConversationBackend", "Turn", "answer_backend", "answer_prompt_set"]


@dataclass
class Turn:
    """One turn to ask: the conversation so far (user and assistant messages) and the turn."""

    id: str
    instruction: str
    system: str
    history: tuple[tuple[str, str], ...] = ()


class ConversationBackend(OpenAIBackend):
    """The served backend of ``eval``, sending the earlier turns of a conversation too."""

    def body(self, prompt: Any, opt: Any) -> dict[str, Any]:
        body = super().body(prompt, opt)
        body["messages"] = chat_messages(prompt.instruction, prompt.system, prompt.history)
        return body


def answer_backend(
    backend: str,
    model: str,
    served: ServedOptions | None = None,
    *,
    tokenizer: str | None = None,
    prompt_format: str = "auto",
    dtype: str = "auto",
) -> GenerationBackend:
    """``openai``: the served model (``served``), sent whole conversations; ``transformers``:
    the model loaded here; ``llamacpp``: a ``.gguf`` file run by llama.cpp here (for both, the
    prompt format renders the earlier turns)."""
    if backend == "openai":
        if served is None:
            raise OptionError("--backend openai needs --base-url")
        return ConversationBackend(served)
    if backend == "transformers":
        return TransformersBackend(model, tokenizer, prompt_format, dtype)
    if backend == "llamacpp":
        return LlamaCppBackend(model, tokenizer, prompt_format)
    raise OptionError(f"--backend: choose from openai, transformers, llamacpp, got {backend!r}")


def answer_prompt_set(
    items: Sequence[PromptItem],
    backend: GenerationBackend,
    responses: str | Path,
    *,
    model: str,
    prompt_set: str,
    opt: GenerationOptions | None = None,
    system: str = "",
    resume: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Answer every turn of every item (see the module doc); returns counts for the record."""
    opt = opt or GenerationOptions()
    path = Path(responses)
    if path.exists() and not resume:
        raise OptionError(
            f"{path} exists; pass --resume to keep its answers and add the missing ones, "
            "or remove it"
        )
    described = backend.describe()
    run: dict[str, Any] = {
        "model": model,
        "prompt_set": prompt_set,
        "prompts": len(items),
        **{k: described[k] for k in ("backend", "prompt_format", "served_model") if k in described},
        "system": system,
        "generation": {
            k: v
            for k, v in opt.__dict__.items()
            if k not in ("batch_size", "threads", "batch_tokens")
        },
    }
    check_responses_run(path, run, resume)
    done = read_done(path) if resume else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(responses_run_path(path), run)
    asked = 0
    tokens: int | None = 0
    with open(append_text(path), "a", encoding="utf-8") as out:  # never through a link

        def on_answer(key: str, text: str) -> None:
            done[key] = text
            out.write(json.dumps({"id": key, "response": text}, ensure_ascii=False) + "\n")
            out.flush()

        for turn in range(1, max(len(i.turns) for i in items) + 1):
            todo = [
                Turn(
                    turn_id(i.id, turn),
                    i.turns[turn - 1],
                    system,
                    tuple((i.turns[t - 1], done[turn_id(i.id, t)]) for t in range(1, turn)),
                )
                for i in items
                if len(i.turns) >= turn and turn_id(i.id, turn) not in done
            ]
            if not todo:
                continue
            log(f"turn {turn}: {len(todo)} prompts to answer")
            used = backend.answer(todo, opt, on_answer, log).get("tokens_generated")
            tokens = None if tokens is None or used is None else tokens + used
            asked += len(todo)
    return {
        "answers": sum(len(i.turns) for i in items),
        "asked": asked,
        "kept": sum(len(i.turns) for i in items) - asked,
        "tokens_generated": tokens,
        "responses": str(path),
    }
