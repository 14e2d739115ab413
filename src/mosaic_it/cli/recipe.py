"""Recipes: every option of ``mosaic-it mosaic`` in a YAML file, and the effective config of a run.

``mosaic-it mosaic --config recipe.yaml`` reads the options from the file (keys are the long
option names, with ``-`` or ``_``); options given on the command line override it, and an
unknown key is an error naming it. Relative paths in a recipe are relative to the recipe's
own directory, so a recipe travels with its data.

Every run writes its effective config beside its output (``OUTPUT.config.yaml``): with it,
``mosaic-it mosaic --config OUTPUT.config.yaml`` runs the same command again and writes the
same bytes.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mosaic_it.cli.registry import Arguments
from mosaic_it.errors import OptionError
from mosaic_it.executors.options import (
    BUILTIN_PREFIX,
    INPUT_KEYS,
    OUTPUT_KEYS,
    render_options,
)

SKIP = {"help", "config", "command", "handler"}


class RecipeError(OptionError):
    """A bad recipe; the message names the file and the key."""


def _options(actions: Iterable[argparse.Action]) -> dict[str, argparse.Action]:
    return {a.dest: a for a in actions if a.dest not in SKIP}


def explicit_options(arguments: Arguments, argv: list[str]) -> set[str]:
    """The options of a command that ``argv`` gives explicitly (parsed with no defaults)."""
    saved = [(a, a.default) for a in arguments.actions]
    try:
        for action in arguments.actions:
            action.default = argparse.SUPPRESS
        given, _ = arguments.parser.parse_known_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(given))


def _load_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise RecipeError(f"{path}: reading a recipe needs PyYAML: pip install pyyaml") from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise RecipeError(f"{path}: nested too deeply to read") from None


def _coerce(action: argparse.Action, key: str, value: Any, where: str) -> Any:
    """A recipe value checked as the command line would check it."""

    def bad(why: str) -> RecipeError:
        return RecipeError(f"{where}: key '{key}': {why}")

    if action.nargs == 0 and isinstance(action.const, bool):  # a store_true/store_false flag
        if not isinstance(value, bool):
            raise bad(f"expected true or false, got {value!r}")
        return value
    if value is None:
        return None
    if isinstance(value, list) and action.type is not None and action.type not in (int, float, str):
        value = "+".join(str(v) for v in value)  # e.g. strategies: [format, permute]
    if action.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"expected an integer, got {value!r}")
    elif action.type is not None:
        if not isinstance(value, str):
            raise bad(f"expected text, got {value!r}")
        assert callable(action.type)  # these parsers name no registered type by a string
        try:
            value = action.type(value)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise bad(str(exc)) from None
    elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise bad(f"expected text, got {value!r}")
    else:
        value = str(value)
    if action.choices is not None and value not in action.choices:
        raise bad(f"{value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def _resolve(key: str, value: Any, base: Path) -> Any:
    if (
        not isinstance(value, str)
        or not value
        or os.path.isabs(value)
        or value.startswith(BUILTIN_PREFIX)
    ):
        return value
    candidate = base / value
    if key in OUTPUT_KEYS:
        return str(candidate) + ("/" if value.endswith("/") else "")
    if key in INPUT_KEYS and candidate.exists():
        return str(candidate)
    return value  # a hub name, or a path that does not exist (reported where it is read)


def apply_recipe(
    arguments: Arguments, args: argparse.Namespace, argv: list[str], path: str
) -> None:
    """Fill ``args`` from the recipe at ``path``, except options ``argv`` gives explicitly."""
    recipe = Path(path)
    data = _load_yaml(recipe)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{recipe}: expected a mapping of option names to values")
    options = _options(arguments.actions)
    explicit = explicit_options(arguments, argv)
    base = recipe.resolve().parent
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in options:
            raise RecipeError(
                f"{recipe}: unknown key '{key}'; the keys are the options of the command: "
                + ", ".join(sorted(options))
            )
        value = _coerce(options[dest], str(key), value, str(recipe))
        if dest not in explicit:
            setattr(args, dest, _resolve(dest, value, base))


def effective_config(
    actions: Iterable[argparse.Action], args: argparse.Namespace, config_file: Path
) -> str:
    """The YAML of every option of the run, paths relative to ``config_file``'s directory."""
    values = {dest: getattr(args, dest) for dest in _options(actions) if hasattr(args, dest)}
    return render_options(values, config_file)
