"""Where mosaic-it keeps what it derives from the user's files (converted tokenizers, facts
derived from a tokenizer's vocabulary, de-quantized models, the replication's stages): never an
input, never an output.

``$MOSAIC_IT_CACHE``, else ``$XDG_CACHE_HOME/mosaic-it``, else ``~/.cache/mosaic-it``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache's root folder (it may not exist yet)."""
    if os.environ.get("MOSAIC_IT_CACHE"):
        return Path(os.environ["MOSAIC_IT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mosaic-it"
