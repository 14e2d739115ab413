"""Models and tokenizers for ``train``, ``eval`` and ``cost``, and the prompt formats they share.

Everything here needs the ``train`` extra (torch, transformers); importing this module without
it raises :class:`ModelError` with the install command, never an ImportError from deep inside.

A model spec is one of:

* ``builtin:tiny-llama``: a randomly initialised Llama (hidden 64, 2 layers, the bundled 32,000
  token tokenizer), for tests, CI and cost measurements on a CPU;
* a ``.gguf`` file: de-quantized once (transformers reads it; needs the ``gguf`` package) into a
  plain model directory in the cache (:func:`gguf_model_dir`), which is then loaded like any
  other, so it trains (full or LoRA) in the chosen dtype;
* a directory saved by ``save_pretrained`` (or by ``mosaic-it train``; a LoRA adapter directory
  is loaded on its base model, which needs ``peft``);
* a Hugging Face Hub id (needs the network, or the local Hub cache).

The prompt format decides how an instruction and its response become one training sequence,
and how an instruction becomes a generation prompt, so that training and evaluation agree:

* ``vicuna``: FastChat's Vicuna v1.1, ``<s>`` + system + `` USER: `` + instruction +
  `` ASSISTANT:`` and then `` `` + response + ``</s>`` (the method's paper);
* ``chat``: the tokenizer's own chat template (system, user, assistant messages).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosaic_it.budget.templates import VICUNA_SYSTEM

TINY_LLAMA = "builtin:tiny-llama"
PROMPT_FORMATS = ("vicuna", "chat")
INSTALL_HINT = 'pip install "mosaic-it[train]"'
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)
# Tokenizers may be a little smaller than the embedding matrix (rows padded to a multiple of
# 64 or 128, reserved ids); a bigger gap means the tokenizer belongs to another model.
VOCAB_SLACK = 1024


class ModelError(ValueError):
    """A model or tokenizer cannot be used; the message says what to change."""


def require_torch() -> Any:
    """Import torch and transformers, or raise a ModelError naming the extra to install."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"this command needs torch and transformers ({exc.name} is not installed); "
            f"install them with: {INSTALL_HINT}"
        ) from None
    return torch


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


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights are: ``kind`` is tiny, gguf, dir, adapter or hub."""

    spec: str
    kind: str
    path: Path | None = None
    gguf_file: str | None = None


def resolve_model(spec: str) -> ModelSource:
    """Check a model spec before anything heavy is loaded; raises ModelError when unusable."""
    if spec == TINY_LLAMA:
        return ModelSource(spec, "tiny")
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix == ".gguf":
            return ModelSource(spec, "gguf", path.parent, path.name)
        raise ModelError(
            f"{spec}: a file, but not a .gguf model; pass a model directory (with config.json and "
            "weights), a .gguf file, a Hub id, or builtin:tiny-llama"
        )
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            return ModelSource(spec, "adapter", path)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if not (path / "config.json").is_file():
            if len(ggufs) == 1:
                return ModelSource(spec, "gguf", path, ggufs[0])
            if ggufs:
                raise ModelError(
                    f"{spec}: holds several .gguf files ({', '.join(ggufs)}); pass one"
                )
            raise ModelError(
                f"{spec}: no config.json here, so not a transformers model directory; pass the "
                "directory that save_pretrained (or mosaic-it train) wrote, or a .gguf file"
            )
        if not any((path / name).is_file() for name in WEIGHT_FILES) and not any(
            path.glob("*.safetensors")
        ):
            raise ModelError(
                f"{spec}: has config.json but no weights (model.safetensors, pytorch_model.bin or "
                "their index); copy the weight files there, or pass a checkpoint directory "
                "(OUTPUT/checkpoint-N) that has them"
            )
        return ModelSource(spec, "dir", path)
    text = str(spec)
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or text.endswith((".gguf", ".json")):
        raise ModelError(f"{spec}: no such file or directory")
    from mosaic_it.io.hub import hub_unreachable

    offline = hub_unreachable()
    if offline:
        raise ModelError(f"{spec}: not a local path; as a hub model id: {offline}")
    return ModelSource(spec, "hub")


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
                f"{where}: cannot load a tokenizer ({_short(exc)}); pass --tokenizer with the "
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
            where = gguf_model_dir(source)
            print(
                f"mosaic-it: {source.spec}: GGUF weights de-quantized to float32 in {where} "
                f"(cached, keyed by the file's SHA-256); loaded as {str(dtype).split('.')[-1]}",
                file=sys.stderr,
            )
            return AutoModelForCausalLM.from_pretrained(str(where), dtype=dtype)
        if source.kind == "adapter":
            if _missing("peft"):
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
        raise ModelError(f"{source.spec}: cannot load the model ({_short(exc)}); {hint}") from exc


def cache_root() -> Path:
    """Where mosaic-it keeps derived files: ``$MOSAIC_IT_CACHE``, else
    ``$XDG_CACHE_HOME/mosaic-it``, else ``~/.cache/mosaic-it``."""
    if os.environ.get("MOSAIC_IT_CACHE"):
        return Path(os.environ["MOSAIC_IT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mosaic-it"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


GGUF_MARKER = "mosaic_it_gguf.json"


def gguf_model_dir(source: ModelSource) -> Path:
    """A plain transformers directory (float32 safetensors, config, tokenizer) with the GGUF
    file's weights de-quantized, made on first use in ``cache_root()/gguf/<stem>-<sha256[:16]>``.

    transformers loads a GGUF file as a quantized model that it refuses to train or save; its
    de-quantized tensors are copied into the same architecture built from the config without
    ``quantization_config``. The directory is written beside and renamed when complete, so an
    interrupted conversion leaves nothing half-made; the key is the file's content, so a changed
    file gets a new directory.
    """
    assert source.path is not None and source.gguf_file is not None
    gguf_path = source.path / source.gguf_file
    digest = file_sha256(gguf_path)
    target = cache_root() / "gguf" / f"{gguf_path.stem}-{digest[:16]}"
    if (target / GGUF_MARKER).is_file():
        return target
    torch = require_torch()
    if _missing("gguf"):
        raise ModelError(
            f"{source.spec}: loading a .gguf file needs the gguf package: pip install gguf"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(
        f"mosaic-it: {source.spec}: de-quantizing the GGUF weights to float32 once, into {target}",
        file=sys.stderr,
    )
    try:
        quantized = AutoModelForCausalLM.from_pretrained(
            str(source.path), gguf_file=source.gguf_file, dtype=torch.float32
        )
        tok = AutoTokenizer.from_pretrained(str(source.path), gguf_file=source.gguf_file)
    except Exception as exc:
        raise ModelError(f"{source.spec}: cannot read the GGUF file ({_short(exc)})") from exc
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        plain.save_pretrained(str(partial))
        tok.save_pretrained(str(partial))
        (partial / GGUF_MARKER).write_text(
            json.dumps(
                {
                    "source": str(gguf_path.resolve()),
                    "sha256": digest,
                    "dtype": "float32",
                    "parameters": sum(p.numel() for p in plain.parameters()),
                },
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
        if not target.exists():  # else another process finished first
            partial.rename(target)
        elif not (target / GGUF_MARKER).is_file():
            raise ModelError(f"{target}: exists but was not written by mosaic-it; move it away")
    except OSError as exc:
        raise ModelError(
            f"{target}: cannot write the de-quantized model ({exc}); set "
            "MOSAIC_IT_CACHE to a writable directory"
        ) from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


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


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------
# Prompt formats
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptFormat:
    """How an instruction and a response become a training row and a generation prompt."""

    name: str  # "vicuna" | "chat"

    def training_row(self, instruction: str, response: str, system: str = "") -> dict[str, Any]:
        """A TRL prompt-completion row; the trainer masks the prompt and trains the completion.

        TRL appends the EOS token to a text completion; a chat completion ends with the
        template's end-of-turn token.
        """
        if self.name == "vicuna":
            return {
                "prompt": f"{system or VICUNA_SYSTEM} USER: {instruction} ASSISTANT:",
                "completion": f" {response}",
            }
        return {
            "prompt": _messages(instruction, system),
            "completion": [{"role": "assistant", "content": response}],
        }

    def generation_ids(self, tokenizer: Any, instruction: str, system: str = "") -> list[int]:
        """Token ids the model continues to answer ``instruction`` (special tokens included)."""
        if self.name == "vicuna":
            row = self.training_row(instruction, "", system)
            return list(tokenizer(row["prompt"]).input_ids)
        out = tokenizer.apply_chat_template(
            _messages(instruction, system),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )
        return list(out["input_ids"])


def _messages(instruction: str, system: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": instruction})
    return messages


def prompt_format(name: str, tokenizer: Any | None = None) -> PromptFormat:
    """Check the format against the tokenizer (``chat`` needs a chat template)."""
    if name not in PROMPT_FORMATS:
        raise ModelError(f"unknown prompt format {name!r}; choose from {', '.join(PROMPT_FORMATS)}")
    if name == "chat" and tokenizer is not None and not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            "--prompt-format chat: this tokenizer has no chat template; use --prompt-format vicuna"
        )
    return PromptFormat(name)
