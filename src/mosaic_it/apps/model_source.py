"""Which model a spec names, checked before anything heavy is loaded.

A model spec is one of:

* ``builtin:tiny-llama``: a randomly initialised Llama (hidden 64, 2 layers, the bundled 32,000
  token tokenizer), for tests, CI and cost measurements on a CPU;
* a ``.gguf`` file: de-quantized once (transformers reads it; needs the ``gguf`` package) into a
  plain model directory in the cache (:func:`mosaic_it.apps.gguf_model.gguf_model_dir`), which
  is then loaded like any other, so it trains (full or LoRA) in the chosen dtype;
* a directory saved by ``save_pretrained`` (or by ``mosaic-it train``; a LoRA adapter directory
  is loaded on its base model, which needs ``peft``);
* a Hugging Face Hub id (needs the network, or the local Hub cache).

Loading one is :mod:`mosaic_it.apps.models`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosaic_it.errors import OptionError

TINY_LLAMA = "builtin:tiny-llama"
INSTALL_HINT = 'pip install "mosaic-it[train]"'
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)


class ModelError(OptionError):
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
    from mosaic_it.hub import hub_unreachable

    offline = hub_unreachable()
    if offline:
        raise ModelError(f"{spec}: not a local path; as a hub model id: {offline}")
    return ModelSource(spec, "hub")


def package_missing(module: str) -> bool:
    """Whether ``module`` cannot be imported here (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is None


def short_error(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
