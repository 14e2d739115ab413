"""What the readers and writers say when an input cannot be used."""

from __future__ import annotations

from typing import Any

from mosaic_it.errors import InputError

__all__ = ["need", "type_name"]


def type_name(value: Any) -> str:
    """A JSON value's type as a message names it ("null" for None)."""
    return "null" if value is None else type(value).__name__


def need(module: str, what: str) -> Any:
    """An optional dependency, or an :class:`InputError` saying how to install it."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise InputError(
            f"{what} needs {module.split('.')[0]}: pip install 'mosaic-it[hf]'"
        ) from None
