"""What the commands that ask a served model share: the server's options from the parsed
arguments (declared by ``eval``'s served group) and the progress line on stderr."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mosaic_it.apps.backends import ServedOptions
from mosaic_it.cli.registry import say
from mosaic_it.errors import OptionError


def served_options(args: argparse.Namespace, model: str) -> ServedOptions:
    """``--base-url`` (required here), ``--api-key-env``, ``--concurrency``, ``--timeout``,
    ``--retries``, for the served model ``model``."""
    if not args.base_url:
        raise OptionError(
            "--base-url is required (the server's API root, e.g. http://127.0.0.1:8000/v1)"
        )
    return ServedOptions(
        args.base_url, model, args.api_key_env, args.concurrency, args.timeout, args.retries
    )


def progress(args: argparse.Namespace) -> Callable[[str], None]:
    """A log function printing ``mosaic-it COMMAND: text`` on stderr, or nothing with
    ``--quiet`` (:func:`mosaic_it.cli.registry.say`)."""
    return lambda text: say(args, text)
