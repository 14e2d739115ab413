"""Output safety: what a command may write, checked before it does any work.

Every command that writes calls :func:`guard` first, naming what it reads and what it writes::

    with guard(inputs={"INPUT": args.input, "--rules": args.rules},
               outputs=[Output(args.output, "OUTPUT"), Output(args.stats, "--stats")]):
        ...  # the work; the outputs are locked until the block ends

``None`` entries are ignored (an option not given), and so are inputs that are not local paths
(a hub name, ``builtin:example``). The guard refuses, with a :class:`PathError` (exit 2 at
the command line) and a message that says what to do:

* an output that is the same file as an input or as another output of the run (compared after
  resolving symbolic links, and by inode for hard links);
* ``-`` (standard input or output) where the command does not stream it: an input is read
  from standard input only when its name is among ``guard``'s ``stdin`` (as JSONL), an output
  written to standard output only when it is an ``Output(..., stream=True)``; at most one
  input may be ``-``;
* an output whose path runs through a file (``notes.txt/out.jsonl``), or in a place that cannot
  be written (read-only file system, no permission);
* a file output that is an existing directory; a directory output (``kind="dir"``: a
  ``save_to_disk`` directory, Ray shards, ``train --output-dir``, ``stats --png``) that exists
  and is neither empty nor marked as written by this tool (a :data:`MARKER` file inside, or
  one of the output's own ``markers``): a foreign directory is never written into or deleted;
* an input that is a FIFO, a socket or a device (it could be read forever);
* an output that another run is writing: each output is locked (``flock`` on a lock file beside
  it, holding the writer's pid) until the block ends, on every exit path; a lock left by a dead
  process is not held (the kernel drops it with the process), so it never blocks a later run.

Directory outputs are marked (created if missing, with the marker inside) when the guard
takes them, so a later run of this tool recognises them as its own.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from mosaic_it.errors import OptionError, describe_os_error, os_error_reason
from mosaic_it.io.nofollow import (
    NotAFile,
    describe_path,
    open_or_create,
    remove_stale_temporaries,
    special_file_type,
    write_new_text,
)
from mosaic_it.signals import signals_blocked

STREAM = "-"  # standard input as an input path, standard output as an output path
MARKER = ".mosaic-it"  # a file inside every directory this tool writes
LOCK_SUFFIX = ".mosaic-lock"


class PathError(OptionError):
    """A path a command must not use (or cannot); the message says what to do."""


class RunInterrupted(Exception):
    """A signal ended the run (Ctrl-C, SIGTERM, SIGHUP: see :mod:`mosaic_it.signals`); the
    message says what was removed and what was kept (the command line prints it and exits
    128 + ``signum``)."""

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass(frozen=True)
class Output:
    """One path a command writes: ``name`` is how the user gave it (OUTPUT, --stats...)."""

    path: str | os.PathLike[str] | None
    name: str = "OUTPUT"
    kind: str = "file"  # "file" or "dir"
    markers: tuple[str, ...] = ()  # other file names that show a directory is this tool's
    stream: bool = False  # "-" writes standard output (not checked, not locked)


def is_stream(path: str | os.PathLike[str] | None) -> bool:
    """Whether a path given on the command line means standard input or output."""
    return path is not None and os.fspath(path) == STREAM


def check_readable_input(path: str | os.PathLike[str], name: str = "INPUT") -> None:
    """Refuse an input that is not a regular file or a directory (a FIFO, a device)."""
    try:
        st = os.stat(path)
    except OSError:
        return  # missing: the reader says so, naming the file
    what = special_file_type(st.st_mode)
    if what is not None:
        raise PathError(
            f"{name} {path}: is {what}, not a regular file; save the data to a file and give that"
        )


def _component_that_is_a_file(path: Path) -> Path | None:
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _nearest_existing(path: Path) -> Path:
    p = path.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: through symbolic links, or by inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _dir_state(path: Path, markers: tuple[str, ...]) -> str:
    """empty, ours or foreign."""
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise PathError(describe_os_error(exc, "cannot list the directory")) from None
    if not names:
        return "empty"
    if any(m in names for m in (MARKER, *markers)):
        return "ours"
    return "foreign"


def check_output(out: Output) -> Path:
    """Checks of one output on its own (see the module docstring); returns its path."""
    if out.path is None:  # check_paths skips outputs without a path
        raise TypeError(f"{out.name}: no path to check")
    text = os.fspath(out.path)
    if text == STREAM:
        if out.kind == "dir":
            raise PathError(
                f"{out.name}: '-' (standard output) cannot hold a directory of files; give a "
                "directory path"
            )
        raise PathError(
            f"{out.name}: cannot be written to standard output ('-') here; give a file name"
        )
    if not text.strip():
        raise PathError(f"{out.name}: empty path")
    path = Path(text.rstrip("/" + os.sep) or text)
    blocker = _component_that_is_a_file(path)
    if blocker is not None:
        raise PathError(
            f"{out.name} {text}: {blocker} is a file, not a directory; choose another place"
        )
    if path.is_dir():
        if out.kind != "dir":
            raise PathError(
                f"{out.name} {text}: is an existing directory; give a file name "
                "(nothing was written or deleted)"
            )
        state = _dir_state(path, out.markers)
        if state == "foreign":
            raise PathError(
                f"{out.name} {text}: a directory that holds files this tool did not write; it "
                "is never written into or replaced: give a new or empty directory"
            )
    elif path.exists() or path.is_symlink():
        if out.kind == "dir":
            what = special_file_type(os.stat(path).st_mode) if path.exists() else None
            if what is not None:
                raise PathError(
                    f"{out.name} {text}: is {what}, not a directory nor a file this tool can "
                    "write (nothing was written): give a new file name or a new directory"
                )
            raise PathError(
                f"{out.name} {text}: exists and is not a directory; give a directory path"
            )
        if path.is_symlink() and not path.exists():
            raise PathError(
                f"{out.name} {text}: a broken symbolic link; remove it or write elsewhere"
            )
        what = special_file_type(os.stat(path).st_mode)
        if what is not None:
            raise PathError(f"{out.name} {text}: is {what}; give a regular file name")
    return path


def check_paths(
    inputs: Mapping[str, str | os.PathLike[str] | None],
    outputs: Iterable[Output],
    stdin: Iterable[str] = (),
) -> list[tuple[Output, Path]]:
    """Every check but the locks: outputs against inputs and against each other; ``-`` only
    for the inputs named in ``stdin`` (one at most) and the outputs that stream."""
    checked: list[tuple[Output, Path]] = []
    local_inputs: list[tuple[str, Path]] = []
    from_stdin: list[str] = []
    for name, value in inputs.items():
        if value is None:
            continue
        if is_stream(value):
            if name not in stdin:
                raise PathError(
                    f"{name}: cannot be read from standard input ('-') here; give a file name"
                )
            from_stdin.append(name)
            if len(from_stdin) > 1:
                raise PathError(
                    f"{' and '.join(from_stdin)} are both '-': only one input can be read from "
                    "standard input; give the other as a file"
                )
            continue
        p = Path(os.fspath(value))
        if p.exists():
            check_readable_input(p, name)
            local_inputs.append((name, p))
    for out in outputs:
        if out.path is None or (out.stream and is_stream(out.path)):
            continue
        path = check_output(out)
        for name, p in local_inputs:
            if same_file(path, p):
                raise PathError(
                    f"{out.name} {out.path} is the same file as {name} {p}; writing it would "
                    "destroy the input: choose another output name"
                )
        for other, other_path in checked:
            if same_file(path, other_path):
                raise PathError(
                    f"{out.name} and {other.name} name the same file ({out.path}); give each "
                    "its own name"
                )
        checked.append((out, path))
    return checked


def lock_path_for(path: str | os.PathLike[str]) -> Path:
    """The lock file of an output: ``.NAME.mosaic-lock`` beside it."""
    p = Path(os.fspath(path).rstrip("/" + os.sep) or os.fspath(path))
    return p.with_name(f".{p.name}{LOCK_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def lock_output(path: str | os.PathLike[str], name: str = "OUTPUT") -> Iterator[Path]:
    """Hold the advisory lock of one output for the block; refuse if another run holds it.

    The lock file is created with ``O_EXCL | O_NOFOLLOW`` or, when a dead run left it, opened
    with ``O_NOFOLLOW`` and used only if it is a regular file with one link holding nothing but
    a process id: a link, a FIFO, a directory or a foreign file at its place is refused by
    name, never written through or removed. With the lock held, the temporaries that killed
    runs left beside the output are removed (:func:`.remove_stale_temporaries`)."""
    lock = lock_path_for(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathError(
            f"{name} {path}: " + describe_os_error(exc, "cannot create the directory")
        ) from None
    # the ending signals wait from making the lock file until the block that removes it: one
    # that came between (while filelock is imported, under load) left the lock file behind
    with ExitStack() as held_back:
        held_back.enter_context(signals_blocked())
        while True:
            fd = _open_lock(lock, name, path)
            if not _lock_now(fd, lock, name, path):
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                os.close(fd)
                pid = int(holder) if holder.isdigit() else None
                who = f"pid {pid}" if pid and _pid_alive(pid) else "another process"
                raise PathError(
                    f"{name} {path}: another mosaic-it run ({who}) is writing it; wait for it "
                    f"to finish or choose another output (lock: {lock})"
                ) from None
            # the file may have been removed by the run that held it just before we locked it
            if _still_at(fd, lock):
                break
            os.close(fd)
        try:
            held_back.close()  # a signal that waited is raised here, and the lock removed
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            remove_stale_temporaries(path)
            yield lock
        finally:
            if _still_at(fd, lock):
                with suppress(OSError):
                    os.unlink(lock)
            os.close(fd)  # releases the lock


def _lock_now(fd: int, lock: Path, name: str, path: str | os.PathLike[str]) -> bool:
    """Lock the open lock file ``fd`` at once (``flock``, exclusive); False: another process
    holds it. The lock goes with the descriptor: closing it (or the process ending) releases it.

    filelock only locks the descriptor (``flock`` on POSIX): the file itself is opened and
    checked here (:func:`_open_lock`: never through a link, a regular file with one link that
    holds nothing but a pid, refused by name otherwise), as ``filelock.FileLock``, which opens
    its file itself, would not (older releases followed a link and truncated its target; a
    link planted at a lock's place once destroyed an input)."""
    with warnings.catch_warnings():  # without flock filelock warns, and this says it below
        warnings.simplefilter("ignore")
        from filelock import lock_descriptor  # here: only commands that write need it

    try:
        return lock_descriptor(fd, blocking=False)
    except OSError as exc:
        if exc.errno == errno.ENOSYS and _still_at(fd, lock):  # no flock on this platform:
            with suppress(OSError):  # no run of this tool can hold the lock file either
                os.unlink(lock)
        os.close(fd)
        if exc.errno == errno.ENOSYS:
            raise PathError(
                f"{name} {path}: outputs are locked with flock, which this platform lacks; "
                "mosaic-it writes outputs on Linux and other POSIX systems"
            ) from None
        raise


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the one at ``path`` (not a link to it)."""
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except OSError:
        return False


def _open_lock(lock: Path, name: str, path: str | os.PathLike[str]) -> int:
    """The lock file's descriptor (see :func:`lock_output`), or a PathError naming it."""

    def refuse(what: str) -> PathError:
        return PathError(
            f"{name} {path}: its lock file {lock} is {what}, not a lock this tool wrote; "
            "nothing was written: remove it (and see who put it there), then run again"
        )

    try:
        fd = open_or_create(lock, os.O_RDWR)
    except NotAFile:
        raise refuse(describe_path(lock)) from None
    except OSError as exc:
        raise PathError(
            f"{name} {path}: cannot write there ({os_error_reason(exc)}); choose a writable place"
        ) from None
    held = os.pread(fd, 64, 0)
    if not LOCK_RECORD.fullmatch(held):
        os.close(fd)
        raise refuse(f"a file holding {held[:20]!r}")
    return fd


LOCK_RECORD = re.compile(rb"[0-9]*\n?")  # what a lock of this tool holds: a pid, or nothing yet


def mark_dir(path: str | os.PathLike[str]) -> None:
    """Create a directory output (if missing) with the marker that makes it this tool's."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    marker = p / MARKER
    if not marker.is_file() or marker.is_symlink():
        write_new_text(marker, "written by mosaic-it; a later run may replace this directory\n")


@contextmanager
def guard(
    inputs: Mapping[str, str | os.PathLike[str] | None] | None = None,
    outputs: Iterable[Output] = (),
    *,
    lock: bool = True,
    stdin: Iterable[str] = (),
) -> Iterator[list[Path]]:
    """Check inputs and outputs, then lock every output for the block (see the module doc).

    ``stdin``: the names of the inputs that may be ``-`` (standard input). ``lock=False``
    checks only: for the other processes of a run whose main process holds the locks (a
    multi-GPU training run)."""
    checked = check_paths(inputs or {}, outputs, tuple(stdin))
    if not lock:
        yield [path for _, path in checked]
        return
    with ExitStack() as stack:
        for out, path in checked:
            stack.enter_context(lock_output(path, out.name))
        for out, path in checked:
            if out.kind == "dir":
                try:
                    mark_dir(path)
                except OSError as exc:
                    raise PathError(
                        f"{out.name} {out.path}: " + describe_os_error(exc, "cannot create")
                    ) from None
        yield [path for _, path in checked]


def file_mode_for(path: str | os.PathLike[str]) -> int:
    """The mode a replaced file keeps, or the one the umask gives a new file (0644 under 022)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask
