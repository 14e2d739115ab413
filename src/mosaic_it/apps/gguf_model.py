"""A ``.gguf`` model file as a plain transformers directory that trains and saves.

transformers loads a GGUF file as a quantized model that it refuses to train or save; its
de-quantized tensors are copied into the same architecture built from the config without
``quantization_config`` and saved once in the cache (:func:`mosaic_it.cache.cache_root`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from mosaic_it.apps.model_source import (
    ModelError,
    ModelSource,
    package_missing,
    require_torch,
    short_error,
)
from mosaic_it.cache import cache_root
from mosaic_it.io.nofollow import NotAFile, remove_tree

NOTES = logging.getLogger(__name__)  # on stderr at the command line, as -q/-v say
GGUF_MARKER = "mosaic_it_gguf.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_model_dir(source: ModelSource) -> Path:
    """A plain transformers directory (float32 safetensors, config, tokenizer) with the GGUF
    file's weights de-quantized, made on first use in ``cache_root()/gguf/<stem>-<sha256[:16]>``.

    The directory is written beside and renamed when complete, so an interrupted conversion
    leaves nothing half-made; the key is the file's content, so a changed file gets a new
    directory.
    """
    assert source.path is not None and source.gguf_file is not None
    gguf_path = source.path / source.gguf_file
    digest = file_sha256(gguf_path)
    target = cache_root() / "gguf" / f"{gguf_path.stem}-{digest[:16]}"
    if (target / GGUF_MARKER).is_file():
        return target
    NOTES.info(
        f"mosaic-it: {source.spec}: de-quantizing the GGUF weights to float32 once, into {target}"
    )
    plain, tok = dequantize(source)
    marker = {
        "source": str(gguf_path.resolve()),
        "sha256": digest,
        "dtype": "float32",
        "parameters": sum(p.numel() for p in plain.parameters()),
    }
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    try:
        remove_tree(partial)  # a leftover of a process with this pid; a link is refused
    except NotAFile as exc:
        raise ModelError(f"{partial}: {exc.strerror}; move it away") from None
    try:
        plain.save_pretrained(str(partial))
        tok.save_pretrained(str(partial))
        (partial / GGUF_MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
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


def dequantize(source: ModelSource) -> tuple[Any, Any]:
    """(the float32 model without ``quantization_config``, the tokenizer) of a GGUF file."""
    torch = require_torch()
    if package_missing("gguf"):
        raise ModelError(
            f"{source.spec}: loading a .gguf file needs the gguf package: pip install gguf"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        quantized = AutoModelForCausalLM.from_pretrained(
            str(source.path), gguf_file=source.gguf_file, dtype=torch.float32
        )
        tok = AutoTokenizer.from_pretrained(str(source.path), gguf_file=source.gguf_file)
    except Exception as exc:
        raise ModelError(f"{source.spec}: cannot read the GGUF file ({short_error(exc)})") from exc
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    return plain, tok
