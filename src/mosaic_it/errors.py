"""The errors of mosaic-it: those a user can fix, and those that are bugs.

Every error a user can fix is a :class:`MosaicItError`: bad input (:class:`InputError`), a bad
option, argument or configuration (:class:`OptionError`), or the environment
(:class:`EnvironmentFault`: disk full, no permission, a package not installed, a worker
process killed). Its message is one line that says what to change. The command line reports
these, and only these, as the user's (exit status :attr:`MosaicItError.exit_status`, 2 unless
a subclass says otherwise); any other exception is a bug of mosaic-it, reported as one
(:class:`InternalError` among them).

:class:`InputError` and :class:`OptionError` are also :class:`ValueError`: code written before
they existed caught ``ValueError`` for them, and still does.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "EnvironmentFault",
    "InputError",
    "InternalError",
    "MosaicItError",
    "OptionError",
    "describe_os_error",
    "faults_of_the_environment",
    "os_error_reason",
]


class MosaicItError(Exception):
    """An error the user can fix; the message (one line) says what to change."""

    exit_status = 2  # what the command line exits with


class InputError(MosaicItError, ValueError):
    """Bad input; the message names the file, the line or record, and the field."""


class OptionError(MosaicItError, ValueError):
    """A bad option, argument or configuration value; the message names it."""


class EnvironmentFault(MosaicItError):
    """The environment failed the run: a disk full or read-only, no permission, an optional
    package not installed, a helper process killed; the message says what and where."""


class InternalError(RuntimeError):
    """A check of mosaic-it's own work failed (a composed sample that does not verify): a bug.
    The command line reports it in one line, and how to see the traceback."""


# OSErrors that only a bug causes (a descriptor used after it was closed), never the environment
_BUG_ERRNOS = frozenset({errno.EBADF})


def os_error_reason(exc: OSError) -> str:
    """Why an operation on a path failed, in words."""
    reasons = {
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.ENOTDIR: "a part of the path is a file",
    }
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))


def describe_os_error(
    exc: OSError, doing: str = "", path: str | os.PathLike[str] | None = None
) -> str:
    """One line for an environment fault: the path, what was done and why it failed.

    The path is the error's own, else ``path`` (what the caller was working on: some calls,
    ``flock`` or ``rmtree`` among them, raise errors that name no file)."""
    where = exc.filename if exc.filename is not None else path
    prefix = f"{os.fspath(where)}: " if where is not None else ""
    return f"{prefix}{doing + ': ' if doing else ''}{os_error_reason(exc)}"


@contextmanager
def faults_of_the_environment(path: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Within the block, an :class:`OSError` (disk full, read-only, no permission, a file
    missing) is raised as the :class:`EnvironmentFault` it is, its message from
    :func:`describe_os_error` (naming ``path`` when the error names no file); one only a bug
    causes (a closed descriptor) stays what it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _BUG_ERRNOS:
            raise
        raise EnvironmentFault(describe_os_error(exc, path=path)) from exc
