"""Models and tokenizers for ``train``, ``eval`` and ``cost``, loaded from a checked spec
(:func:`mosaic_it.apps.model_source.resolve_model`).

Everything here needs the ``train`` extra (torch, transformers); without it a
:class:`~mosaic_it.apps.model_source.ModelError` says what to install, never an ImportError
from deep inside. The prompt formats that training and evaluation share are in
:mod:`mosaic_it.apps.prompt_formats`.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from mosaic_it.apps.gguf_model import gguf_model_dir
from mosaic_it.apps.model_source import (
    INSTALL_HINT,
    ModelError,
    ModelSource,
    package_missing,
    require_torch,
    resolve_model,
    short_error,
)

NOTES = logging.getLogger(__name__)  # on stderr at the command line, as -q/-v say

# Tokenizers may be a little smaller than the embedding matrix (rows padded to a multiple of
# 64 or 128, reserved ids); a bigger gap means the tokenizer belongs to another model.
VOCAB_SLACK = 1024


def use_bf16(dtype: str, torch: Any) -> bool:
    """Whether ``--dtype`` (auto, bf16 or fp32) means bf16 here: auto is bf16 on a GPU that
    supports it, fp32 otherwise."""
    return dtype == "bf16" or (
        dtype == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    )


# --------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------


def bundled_hf_tokenizer() -> Any:
    """The bundled 32k Llama-family tokenizer as a transformers fast tokenizer (adds BOS)."""
    require_torch()
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from mosaic_it.budget.tokenizer import load_tokenizer

    counter = load_tokenizer()
    backend = copy.deepcopy(counter.backend)
    # transformers' convention: "</s>" appended as text is the EOS token (TRL relies on it).
    backend.encode_special_tokens = False
    bos, eos = counter.bos_token or "<s>", counter.eos_token or "</s>"
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A",
        pair=f"{bos} $A {bos} $B",
        special_tokens=[(bos, backend.token_to_id(bos))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        unk_token="<unk>",
        pad_token="<unk>",
    )


def tiny_llama_config(vocab_size: int = 32000) -> Any:
    """The CI model: hidden 64, 2 layers, tied embeddings (about 2.2M parameters)."""
    require_torch()
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_tokenizer_for(source: ModelSource, tokenizer: str | None = None) -> Any:
    """The transformers tokenizer of a model (or ``tokenizer``, a directory or Hub id)."""
    require_torch()
    from transformers import AutoTokenizer

    if tokenizer is None and source.kind == "tiny":
        tok = bundled_hf_tokenizer()
    else:
        where = tokenizer or (str(source.path) if source.path else source.spec)
        if tokenizer is None and source.kind == "gguf":
            where = str(gguf_model_dir(source))
        if tokenizer is None and source.kind == "adapter":
            where = _adapter_tokenizer_dir(source)
        try:
            tok = AutoTokenizer.from_pretrained(where)
        except Exception as exc:  # transformers raises OSError, ValueError, ImportError...
            raise ModelError(
                f"{where}: cannot load a tokenizer ({short_error(exc)}); pass --tokenizer with the "
                "model's tokenizer directory"
            ) from exc
    if tok.eos_token is None:
        raise ModelError(f"tokenizer of {source.spec} has no EOS token; pass --tokenizer")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # padding is masked out of the loss and the attention
    return tok


def _adapter_tokenizer_dir(source: ModelSource) -> str:
    assert source.path is not None
    if (source.path / "tokenizer_config.json").is_file() or (
        source.path / "tokenizer.json"
    ).is_file():
        return str(source.path)
    return _adapter_base(source.path)[0]


def _adapter_base(path: Path) -> tuple[str, int]:
    """The base model of a LoRA adapter directory, and the seed a random base was made with.

    ``mosaic-it train`` records the model spec it was given (a .gguf file or the tiny model
    say more than peft's ``base_model_name_or_path``); other adapters name their base there.
    """
    saved = path / "mosaic_it_train.json"
    if saved.is_file():
        try:
            config = json.loads(saved.read_text(encoding="utf-8"))["config"]
            return str(config["model"]), int(config.get("seed", 0))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base = config["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"{path}/adapter_config.json: cannot read the base model ({exc})"
        ) from None
    if not base:
        raise ModelError(f"{path}/adapter_config.json: names no base model; pass the merged model")
    return str(base), 0


def load_model(source: ModelSource, *, dtype: Any = None, seed: int = 0) -> Any:
    """A causal LM in ``dtype`` (default float32); raises ModelError with what to change."""
    torch = require_torch()
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    dtype = dtype or torch.float32
    if source.kind == "tiny":
        torch.manual_seed(seed)
        return LlamaForCausalLM(tiny_llama_config()).to(dtype)
    try:
        if source.kind == "gguf":
            where: Path | str = gguf_model_dir(source)
            NOTES.info(
                f"mosaic-it: {source.spec}: GGUF weights de-quantized to float32 in {where} "
                f"(cached, keyed by the file's SHA-256); loaded as {str(dtype).split('.')[-1]}"
            )
            return AutoModelForCausalLM.from_pretrained(str(where), dtype=dtype)
        if source.kind == "adapter":
            if package_missing("peft"):
                raise ModelError(
                    f"{source.spec}: a LoRA adapter; loading it needs peft: {INSTALL_HINT}"
                )
            from peft import PeftModel

            assert source.path is not None
            base_spec, base_seed = _adapter_base(source.path)
            base = load_model(resolve_model(base_spec), dtype=dtype, seed=base_seed)
            return PeftModel.from_pretrained(base, str(source.path))
        where = str(source.path) if source.path else source.spec
        return AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    except ModelError:
        raise
    except Exception as exc:
        hint = (
            "check the Hub id, or download the model and pass its directory (no network here?)"
            if source.kind == "hub"
            else "check that the directory is complete and was written by save_pretrained"
        )
        raise ModelError(
            f"{source.spec}: cannot load the model ({short_error(exc)}); {hint}"
        ) from exc


def check_vocab(model: Any, tokenizer: Any, model_name: str) -> None:
    """Refuse a tokenizer that does not belong to the model (ids out of range, or far fewer)."""
    rows = model.get_input_embeddings().num_embeddings
    size = len(tokenizer)
    if size > rows or rows - size > VOCAB_SLACK:
        raise ModelError(
            f"tokenizer/model vocabulary mismatch: the tokenizer has {size} tokens, the model "
            f"{model_name} has {rows} embedding rows. Use the model's own tokenizer (drop "
            "--tokenizer, "
            "or pass the tokenizer saved with the model); a mosaic made with another tokenizer "
            "still trains, but mosaic it with --tokenizer set to this model's for exact budgets"
        )
