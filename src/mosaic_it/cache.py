"""Where mosaic-it keeps what it derives from the user's files (converted tokenizers, facts
derived from a tokenizer's vocabulary, de-quantized models, the replication's stages): never an
input, never an output.

``$MOSAIC_IT_CACHE``, else ``$XDG_CACHE_HOME/mosaic-it``, else ``~/.cache/mosaic-it``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def cache_root() -> Path:
    """The cache's root folder (it may not exist yet)."""
    if os.environ.get("MOSAIC_IT_CACHE"):
        return Path(os.environ["MOSAIC_IT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mosaic-it"


def keep(path: Path, text: str) -> bool:
    """Write one cache entry: under a temporary name beside ``path``, then renamed onto it, so
    a reader (another run at once) sees a whole entry or none. A cache that cannot be written
    (read-only, full) is left alone: False, and the next run derives the entry again.

    Not :mod:`mosaic_it.io.atomic`, whose writes are a command's outputs (named in errors,
    refused when unsafe): an entry that fails to be kept is no error at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:  # the umask's mode
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True
