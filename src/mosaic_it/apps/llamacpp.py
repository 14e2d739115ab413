"""Generating answers with llama.cpp in this process: ``mosaic-it eval --backend llamacpp``.

llama.cpp (through the ``llama-cpp-python`` binding, the ``llamacpp`` extra) runs a ``.gguf``
file on the CPU without de-quantizing it. The prompt is built exactly as the transformers
backend builds it: the same prompt format renders the item and the transformers tokenizer of the
model (the GGUF file's own, or ``--tokenizer``) turns it into token ids, which llama.cpp
continues; the answer's token ids are decoded by that tokenizer too. So the two backends differ
only in the arithmetic of the model, and ``benchmarks/llamacpp_agreement.py`` measures how often
their greedy answers agree.

One prompt at a time (the binding decodes one sequence): on a CPU, llama.cpp's quantized or
f16 kernels make up for the batching that the transformers backend has; figures for both are
in docs/results/performance.md. A model trained by ``mosaic-it train`` becomes a GGUF file with
llama.cpp's own converter (``convert_hf_to_gguf.py --outtype f32``; docs/how-to/evaluate.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from mosaic_it.apps.backends import PromptLike
from mosaic_it.apps.generation import GenerationOptions, choose_format, idle_cores
from mosaic_it.apps.model_source import (
    ModelError,
    package_missing,
    require_torch,
    resolve_model,
    short_error,
)
from mosaic_it.apps.models import load_tokenizer_for

__all__ = ["LlamaCppBackend"]

INSTALL = (
    'pip install "mosaic-it[llamacpp]" (llama-cpp-python builds from source: a C++ compiler '
    "and cmake)"
)
CONTEXT_STEP = 512  # the context is sized to the longest prompt and answer, rounded up to this


class LlamaCppBackend:
    """A ``.gguf`` file run by llama.cpp here, one prompt at a time, greedy unless sampled."""

    name = "llamacpp"

    def __init__(
        self, model_spec: str, tokenizer: str | None = None, prompt_format: str = "auto"
    ) -> None:
        source = resolve_model(model_spec)
        if source.kind != "gguf" or source.path is None or source.gguf_file is None:
            raise ModelError(
                f"{model_spec}: --backend llamacpp runs a .gguf file; make one of a transformers "
                "model with llama.cpp's convert_hf_to_gguf.py (--outtype f32 or f16), or use "
                "--backend transformers"
            )
        if package_missing("llama_cpp"):
            raise ModelError(f"--backend llamacpp needs llama-cpp-python: {INSTALL}")
        self.path = source.path / source.gguf_file
        self.tokenizer = (
            load_tokenizer_for(source, tokenizer) if tokenizer else _gguf_tokenizer(source)
        )
        self.fmt = choose_format(prompt_format, model_spec, self.tokenizer)
        self.llm: Any = None
        self.context = 0
        self.threads = 0
        self.load_seconds = 0.0

    def describe(self) -> dict[str, Any]:
        import llama_cpp

        return {
            "backend": self.name,
            "prompt_format": self.fmt.name,
            "device": "cpu",
            "gguf_file": self.path.name,
            "llama_cpp_python": llama_cpp.__version__,
        }

    def _load(self, context: int, threads: int, seed: int) -> Any:
        """The model with a context of at least ``context`` tokens (loaded again if larger)."""
        if self.llm is not None and context <= self.context and threads == self.threads:
            return self.llm
        from llama_cpp import Llama

        size = -(-context // CONTEXT_STEP) * CONTEXT_STEP
        t0 = time.perf_counter()
        try:
            self.llm = Llama(
                model_path=str(self.path),
                n_ctx=size,
                n_batch=min(size, 512),
                n_threads=threads,
                n_threads_batch=threads,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"{self.path}: llama.cpp cannot load it ({short_error(exc)})"
            ) from None
        self.load_seconds += time.perf_counter() - t0
        self.context, self.threads = size, threads
        return self.llm

    def answer(
        self,
        prompts: Sequence[PromptLike],
        opt: GenerationOptions,
        on_answer: Callable[[str, str], None],
        log: Callable[[str], None] = lambda s: None,
    ) -> dict[str, Any]:
        """Answer every prompt in order; ``on_answer(id, text)`` as each one is done."""
        encoded = [
            (p, self.fmt.generation_ids(self.tokenizer, p.instruction, p.system, _history(p)))
            for p in prompts
        ]
        if not encoded:
            return {"answers": 0, "tokens_generated": 0, "threads": None}
        threads = opt.threads or idle_cores()
        longest = max(len(ids) for _, ids in encoded)
        llm = self._load(longest + opt.max_new_tokens, threads, opt.seed)
        stop = self.stop_ids(llm)
        generated = 0
        t0 = time.perf_counter()
        for done, (p, ids) in enumerate(encoded, 1):
            answer = self.continue_ids(llm, ids, opt, stop)
            generated += len(answer)
            on_answer(p.id, self.tokenizer.decode(answer, skip_special_tokens=True).strip())
            if done % 10 == 0 or done == len(encoded):
                rate = generated / max(time.perf_counter() - t0, 1e-9)
                log(f"{done}/{len(encoded)} answered ({rate:.1f} tokens/s)")
        return {"answers": len(encoded), "tokens_generated": generated, "threads": threads}

    def stop_ids(self, llm: Any) -> set[int]:
        """The tokenizer's EOS and every end-of-generation token of the GGUF file."""
        import llama_cpp

        stop = {llm.token_eos()}
        if self.tokenizer.eos_token_id is not None:
            stop.add(self.tokenizer.eos_token_id)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        stop.update(t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))
        return stop

    @staticmethod
    def continue_ids(llm: Any, ids: list[int], opt: GenerationOptions, stop: set[int]) -> list[int]:
        """The new token ids after ``ids``, up to the first stop or ``max_new_tokens``:
        greedy (temperature 0), or sampled with the options' temperature and top-p only."""
        if opt.sample:  # seeded per prompt: an answer does not depend on the ones before it
            llm.set_seed(opt.seed)
            settings = dict(temp=opt.temperature, top_p=opt.top_p, top_k=0, min_p=0.0)
        else:
            settings = dict(temp=0.0, top_k=1)
        out: list[int] = []
        # from an empty cache: the binding would reuse the previous prompt's common beginning,
        # and an answer would then depend on which prompt came before it
        llm.reset()
        for token in llm.generate(ids, reset=True, repeat_penalty=1.0, **settings):
            if token in stop:
                break
            out.append(token)
            if len(out) >= opt.max_new_tokens:
                break
        return out


def _history(p: PromptLike) -> Sequence[tuple[str, str]]:
    return getattr(p, "history", ())


def _gguf_tokenizer(source: Any) -> Any:
    """The GGUF file's own tokenizer, read by transformers (the weights are not de-quantized)."""
    require_torch()
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(source.path), gguf_file=source.gguf_file)
    except Exception as exc:  # transformers raises OSError, ValueError, ImportError...
        raise ModelError(
            f"{source.spec}: transformers cannot read the GGUF file's tokenizer "
            f"({short_error(exc)}); pass --tokenizer with the model's tokenizer directory"
        ) from exc
    if tok.eos_token is None:
        raise ModelError(f"tokenizer of {source.spec} has no EOS token; pass --tokenizer")
    return tok
