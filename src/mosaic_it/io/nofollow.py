"""Creating, opening and removing the files this tool writes without following a link.

Anyone who can write a directory can plant a symbolic link (or a FIFO, a directory, a hard
link) where a run will write a file it names itself: a lock, a part, a marker. Every such file
is created here with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a new inode, never a link's target) or
opened with ``O_NOFOLLOW`` and checked to be a regular file with one link; what is in the way
is refused by name (:class:`.PathError`), never written through and never deleted.

Stale temporaries (a run killed before it could remove them) are removed by the next run on
the same output (:func:`remove_stale_temporaries`): only regular files and directories whose
names follow this tool's temporary scheme beside that output, found while the output's lock is
held, so that no live run of this tool can own them.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

NOFOLLOW_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC

# atomic.py's names: ".NAME." + 8 characters from tempfile's alphabet + ".partial" or ".old"
TEMP_RANDOM = r"[a-z0-9_]{8}"


class NotAFile(OSError):
    """A path this tool would write is a link, a FIFO, a directory... (the message says which)."""


def special_file_type(mode: int) -> str | None:
    """A FIFO, a socket or a device, in words (None for a file, a directory or a link)."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return None


def describe_path(path: str | os.PathLike[str]) -> str:
    """What is at ``path``, in words, without following a link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        dangling = "" if os.path.exists(path) else "dangling "
        return f"a {dangling}symbolic link to {target}"
    if stat.S_ISDIR(mode):
        return "a directory"
    special = special_file_type(mode)
    if special is not None:
        return special
    if st.st_nlink > 1:
        return f"a file with {st.st_nlink} hard links (another name shares its content)"
    return "a regular file"


def _refuse(path: str | os.PathLike[str]) -> NotAFile:
    return NotAFile(0, f"is {describe_path(path)}, not a file this tool wrote", os.fspath(path))


def create_new(path: str | os.PathLike[str], flags: int = os.O_WRONLY, mode: int = 0o644) -> int:
    """A new file at ``path`` (a descriptor): never a link's target, never an existing file.
    Raises :class:`FileExistsError` when something is there (link, file, FIFO...)."""
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | NOFOLLOW_FLAGS, mode)


def open_regular(path: str | os.PathLike[str], flags: int) -> int:
    """An existing regular file with a single link, opened without following a link; anything
    else there raises :class:`NotAFile` saying what it is."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | NOFOLLOW_FLAGS)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _refuse(path) from None  # ELOOP (a link), EISDIR, ENXIO (a socket)...
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise _refuse(path)
    os.set_blocking(fd, True)
    return fd


def open_or_create(path: str | os.PathLike[str], flags: int = os.O_RDWR) -> int:
    """:func:`open_regular` if the file is there, else :func:`create_new` (race-free)."""
    while True:
        try:
            return create_new(path, flags)
        except FileExistsError:
            pass
        try:
            return open_regular(path, flags)
        except FileNotFoundError:
            continue  # removed between the two calls: create it


def write_new_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path``, replacing a regular file this run may own, never writing
    through a link or into anything but a regular file (see :func:`open_or_create`)."""
    fd = open_or_create(path, os.O_WRONLY)
    with open(fd, "w", encoding="utf-8", newline="\n") as out:
        out.truncate(0)
        out.write(text)


def append_text(path: str | os.PathLike[str]) -> int:
    """A descriptor appending to ``path`` (created if missing), never through a link."""
    return open_or_create(path, os.O_WRONLY | os.O_APPEND)


def check_real_dir(path: str | os.PathLike[str]) -> None:
    """Refuse a directory path this tool names itself that is a link or not a directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise NotAFile(0, f"is {describe_path(path)}, not a directory this tool wrote", str(path))


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a directory this tool wrote (a link there is refused, never followed)."""
    check_real_dir(path)
    if os.path.lexists(path):
        shutil.rmtree(path)


def remove_stale_temporaries(output: str | os.PathLike[str]) -> list[Path]:
    """Remove what runs of this tool killed before cleaning left beside ``output``: files
    ``.NAME.XXXXXXXX.partial`` and directories ``.NAME.XXXXXXXX.partial`` / ``.old``
    (:mod:`.atomic`'s names). Call it only while holding the output's lock. Links, FIFOs and
    anything else by those names are left alone. Returns what was removed."""
    p = Path(os.fspath(output).rstrip("/" + os.sep) or os.fspath(output))
    parent = p.parent
    pattern = re.compile(re.escape(f".{p.name}.") + TEMP_RANDOM + r"\.(partial|old)")
    removed: list[Path] = []
    try:
        names = os.listdir(parent if str(parent) else ".")
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        stale = parent / name
        try:
            st = os.lstat(stale)
            if stat.S_ISREG(st.st_mode) and match.group(1) == "partial" and st.st_nlink == 1:
                os.unlink(stale)
            elif stat.S_ISDIR(st.st_mode) and set(os.listdir(stale)) <= {"d"}:
                shutil.rmtree(stale)
            else:
                continue
        except OSError:
            continue  # gone meanwhile, or not ours to remove
        removed.append(stale)
    return removed
