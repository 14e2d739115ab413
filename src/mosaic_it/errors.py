"""Errors that are bugs of mosaic-it, not of its input or environment."""

from __future__ import annotations


class InternalError(RuntimeError):
    """A check of mosaic-it's own work failed (a composed sample that does not verify): a bug.
    The command line reports it in one line, and how to see the traceback."""
