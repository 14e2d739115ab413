"""Fingerprints of a file's content (or a directory's files'), for resuming a run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mosaic_it.io.outputs import LOCK_SUFFIX, MARKER

FULL_HASH_LIMIT = 256 << 20  # bigger files are fingerprinted from sampled blocks
SAMPLED_BLOCKS = 64
BLOCK = 1 << 20


def content_digest(path: str | os.PathLike[str]) -> str:
    """A fingerprint of a file's (or a directory's files') content, for resuming.

    Files up to :data:`FULL_HASH_LIMIT` are hashed whole (``sha256:``); a bigger file is
    fingerprinted from its size, modification time and :data:`SAMPLED_BLOCKS` blocks spread
    over it (``sampled:``): an edit that keeps the size and the time and misses every block
    goes unseen. A directory hashes its files' relative names and fingerprints, in order.
    """
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for child in sorted(p.rglob("*")):
            if child.is_file() and child.name != MARKER and not child.name.endswith(LOCK_SUFFIX):
                h.update(f"{child.relative_to(p).as_posix()}\0{content_digest(child)}\n".encode())
        return "dir:" + h.hexdigest()
    h = hashlib.sha256()
    with open(p, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_size <= FULL_HASH_LIMIT:
            while chunk := f.read(BLOCK):
                h.update(chunk)
            return "sha256:" + h.hexdigest()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        step = (st.st_size - BLOCK) // (SAMPLED_BLOCKS - 1)
        for i in range(SAMPLED_BLOCKS):
            h.update(os.pread(f.fileno(), BLOCK, i * step))
    return "sampled:" + h.hexdigest()
