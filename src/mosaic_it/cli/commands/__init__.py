"""The subcommands of ``mosaic-it``, one module each; :data:`COMMANDS` is the registry, in the
order of ``mosaic-it --help``. A new command is a module with a ``COMMAND`` and a line here."""

from __future__ import annotations

from mosaic_it.cli.commands import (
    answer,
    cost,
    eval,
    judge,
    make_eval,
    mosaic,
    rl_prompts,
    rules,
    score,
    split,
    stats,
    train,
    verify,
)
from mosaic_it.cli.registry import Command

COMMANDS: tuple[Command, ...] = (
    mosaic.COMMAND,
    rules.COMMAND,
    train.COMMAND,
    cost.COMMAND,
    eval.COMMAND,
    answer.COMMAND,
    judge.COMMAND,
    stats.COMMAND,
    make_eval.COMMAND,
    score.COMMAND,
    verify.COMMAND,
    rl_prompts.COMMAND,
    split.COMMAND,
)
