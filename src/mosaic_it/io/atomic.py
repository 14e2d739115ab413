"""The one way this package replaces a file or a directory: write beside it, then rename.

A reader never sees a partial output, and a write that fails leaves the earlier output as it
was. Every writer of :mod:`mosaic_it.io` goes through :func:`atomic_path` (files) or
:func:`atomic_dir` (directories).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

from mosaic_it.errors import os_error_reason
from mosaic_it.io.outputs import PathError, file_mode_for, mark_dir


def sync_data(fd: int) -> None:
    """A file's data to the disk: ``fdatasync`` where the platform has it (macOS has not),
    else ``fsync`` (the same, and the file's times too)."""
    (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """A temporary path beside ``path`` renamed onto it when the block succeeds.

    The file gets the mode of the file it replaces, or the one the umask gives a new file. A
    write that fails (disk full, read-only, no permission) leaves ``path`` as it was and raises
    a :class:`PathError` naming it.
    """
    path = Path(path)
    parent = _parent(path)
    tmp = ""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=parent)
        os.fchmod(fd, file_mode_for(path))
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp, str(parent), str(path)):
            kept = "the earlier file is unchanged" if path.exists() else "nothing was written"
            raise PathError(f"{path}: cannot write: {os_error_reason(exc)}; {kept}") from None
        raise


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A text file that appears at ``path`` only when the block finishes without error."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` the same way (a link at ``path`` is replaced, never followed)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A fresh directory beside ``path`` (it does not exist yet: the block creates it) swapped
    into place when the block succeeds, marked as this tool's; the directory it replaces is
    removed only then."""
    path = Path(path)
    parent = _parent(path)
    parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise PathError(f"{path}: exists and is not a directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=parent))
    old = None
    try:
        yield tmp / "d"
        mark_dir(tmp / "d")  # a later run may replace it: it is this tool's
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / "d")
        os.replace(tmp / "d", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
